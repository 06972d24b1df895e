/*
 * servers.c: test_store_outages' outages: two tables renamed away and back, the fixture's
 * mariadbd stopped and started again, redis-server killed and started again empty. Each posts
 * the tips and streams meant for its outage and waits until every role said it paused and
 * resumed.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outages.h"
#include "url.h"

static void sql_or_fail(const char *sql)
{
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
}

/* A fresh connection answers (the server may be down): @returns true when it did. */
static bool mysql_answers(void)
{
        char err[256];
        struct mysql_url u;
        MYSQL *m = mysql_init(NULL);
        bool ok;

        cr_assert(url_parse_mysql(fx.mysql_url, &u, err, sizeof(err)) == 0, "%s", err);
        ok = mysql_real_connect(m, u.host, u.user, u.password, u.database, u.port, NULL, 0) &&
             mysql_query(m, "SELECT 1 FROM recharge LIMIT 1") == 0;
        if (ok)
                mysql_free_result(mysql_store_result(m));
        mysql_close(m);
        return ok;
}

/* The fixture file DIR/pid/<name>.pid and the pid in it. */
static pid_t fixture_pid(const char *name, char *pidfile, size_t size)
{
        char *text;
        pid_t pid;

        snprintf(pidfile, size, "%s/pid/%s.pid", support_fixture("LIVEFLOW_TEST_DIR"), name);
        text = support_read_file(pidfile, NULL);
        cr_assert(text != NULL, "%s", pidfile);
        pid = (pid_t)atoi(text);
        free(text);
        cr_assert(pid > 0 && kill(pid, 0) == 0, "no fixture %s at pid %d", name, (int)pid);
        return pid;
}

static void wait_gone(pid_t pid, const char *what)
{
        long long deadline = support_now_ms() + WAIT_MS;

        while (kill(pid, 0) == 0 && support_now_ms() < deadline)
                support_sleep_ms(50);
        cr_assert(kill(pid, 0) != 0, "%s did not stop", what);
}

/* Starts cmd again as the fixture did (its own session, output to its log), its pid into
 * pidfile and into the fixture env file's variable env_name. */
static void restart_server(const char *cmd, const char *name, const char *pidfile,
                           const char *env_name)
{
        const char *dir = support_fixture("LIVEFLOW_TEST_DIR");

        cr_assert(eq(int,
                     support_sh("cd / && setsid %s >>%s/log/%s.log 2>&1 </dev/null & echo $! >%s",
                                cmd, dir, name, pidfile),
                     0));
        cr_assert(eq(int,
                     support_sh("sed -i \"s/^export %s=.*/export %s=$(cat %s)/\" %s/env", env_name,
                                env_name, pidfile, dir),
                     0));
}

/* a) recharge and settlement_detail renamed away (a bad deploy) for a few seconds, and back. */
void outage_tables_away(void)
{
        long long t0 = support_now_ms();

        sql_or_fail("RENAME TABLE recharge TO recharge_away, settlement_detail TO "
                    "settlement_detail_away");
        post_until(120, false);
        wait_unavailable(&fx.w[W_SYNC], "mysql", 1, "recharge renamed away");
        wait_unavailable(&fx.w[W_SETTLE], "mysql", 1, "settlement_detail renamed away");
        post_stream(0, false);
        post_stream(6, true);
        while (support_now_ms() - t0 < 4000)
                support_sleep_ms(100);
        sql_or_fail("RENAME TABLE recharge_away TO recharge, settlement_detail_away TO "
                    "settlement_detail");
        cr_log_info("tables away for %lld ms", support_now_ms() - t0);
        post_until(120, true);
        wait_unavailable(&fx.w[W_SYNC], "mysql", 0, "recharge back");
        wait_unavailable(&fx.w[W_SETTLE], "mysql", 0, "settlement_detail back");
}

/* b) the fixture's mariadbd stopped (cleanly: the fixture does not flush at each commit) and
 * started again with its own command line. */
void outage_mariadb_restart(void)
{
        char pidfile[512], cmd[4096];
        pid_t pid = fixture_pid("mariadb", pidfile, sizeof(pidfile));
        long long t0 = support_now_ms(), deadline;

        support_command_line(pid, cmd, sizeof(cmd));
        mysql_close(fx.mysql);
        fx.mysql = NULL;
        cr_assert(kill(pid, SIGTERM) == 0);
        wait_gone(pid, "mariadbd");
        post_until(QUIET_FROM, false);
        post_stream(1, false);
        post_stream(7, true);
        for (int i = 0; i < 4; i++)
                wait_unavailable(&fx.w[i], "mysql", 1, "mariadbd stopped");
        support_sleep_ms(1000);
        restart_server(cmd, "mariadb", pidfile, "LIVEFLOW_TEST_MYSQLD_PID");
        deadline = support_now_ms() + WAIT_MS;
        while (!mysql_answers() && support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(mysql_answers(), "mariadbd did not come back (%s)", cmd);
        fx.mysql = support_mysql_connect(fx.mysql_url);
        cr_log_info("mariadbd away for %lld ms", support_now_ms() - t0);
        post_until(QUIET_FROM, true);
        for (int i = 0; i < 4; i++)
                wait_unavailable(&fx.w[i], "mysql", 0, "mariadbd back");
}

static void redis_config_is(const char *name, const char *want)
{
        redisReply *r = redisCommand(fx.redis, "CONFIG GET %s", name);

        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "CONFIG GET %s", name);
        cr_assert_str_eq(r->element[1]->str, want, "the fixture Redis keeps no data: %s", name);
        freeReplyObject(r);
}

/* c) redis-server killed and started again, empty, the way the fixture starts it (ops/lib.sh's
 * start_redis: same port and directory, no persistence; redis-server rewrites its own command
 * line, so it cannot be read back like mariadbd's). */
void outage_redis_restart_empty(void)
{
        const char *dir = support_fixture("LIVEFLOW_TEST_DIR");
        char pidfile[512], epoch[64], now[64];
        pid_t pid = fixture_pid("redis", pidfile, sizeof(pidfile));
        long long t0 = support_now_ms(), deadline = t0 + WAIT_MS;

        /* The quiet rooms' tips are all projected: what Redis loses now, only its rebuild from
         * MySQL brings back. */
        wait_redis(ANCHORS / 2, false);
        redis_config_is("save", "");
        redis_config_is("appendonly", "no");
        redis_get(EPOCH_KEY, epoch, sizeof(epoch));
        cr_assert(epoch[0] != '\0', "the roles keep an epoch token in Redis");
        cr_assert(kill(pid, SIGKILL) == 0);
        wait_gone(pid, "redis-server");
        post_until(260, false);
        post_stream(2, false);
        post_stream(8, true);
        wait_unavailable(&fx.w[W_STREAM], "redis", 1, "redis-server killed");
        cr_assert(eq(int,
                     support_sh("LF_PROG=tests . ./ops/lib.sh && start_redis %s %s/redis %s "
                                "%s/log/redis.log",
                                support_fixture("LIVEFLOW_TEST_REDIS_PORT"), dir, pidfile, dir),
                     0),
                  "redis-server did not start again (log %s/log/redis.log)", dir);
        cr_assert(eq(int,
                     support_sh("sed -i \"s/^export LIVEFLOW_TEST_REDIS_PID=.*/export "
                                "LIVEFLOW_TEST_REDIS_PID=$(cat %s)/\" %s/env",
                                pidfile, dir),
                     0));
        redis_connect();
        /* A new token: the roles noticed that Redis lost its data. */
        do {
                redis_get(EPOCH_KEY, now, sizeof(now));
                if (now[0] && strcmp(now, epoch) != 0)
                        break;
                support_sleep_ms(100);
        } while (support_now_ms() < deadline);
        cr_assert(now[0] != '\0' && strcmp(now, epoch) != 0,
                  "epoch token %s, before the restart %s", now, epoch);
        cr_log_info("redis away for %lld ms", support_now_ms() - t0);
        post_stream(3, false);
        post_stream(9, true);
        post_until(260, true);
        wait_unavailable(&fx.w[W_STREAM], "redis", 0, "redis-server back");
}
