/* test_metrics.c: the Prometheus registry and its text exposition. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

Test(metrics, counter_renders_help_type_and_labels)
{
        struct metrics *m = metrics_new();
        struct metric *a = metrics_counter(m, "x_total", "Things", "k=\"a\"");
        struct metric *b = metrics_counter(m, "x_total", "Things", "k=\"b\"");
        char *text;

        metric_add(a, 3);
        metric_add(b, 1);
        cr_assert_eq(metrics_counter(m, "x_total", "Things", "k=\"a\""), a,
                     "same series, same pointer");
        text = metrics_render(m, NULL);
        cr_assert(strstr(text, "# HELP x_total Things\n# TYPE x_total counter\n"), "%s", text);
        cr_assert(strstr(text, "x_total{k=\"a\"} 3\n"), "%s", text);
        cr_assert(strstr(text, "x_total{k=\"b\"} 1\n"), "%s", text);
        cr_assert_eq(strstr(strstr(text, "# TYPE") + 1, "# TYPE"), NULL,
                     "one TYPE line per family");
        free(text);
        metrics_destroy(m);
}

Test(metrics, histogram_buckets_are_cumulative)
{
        static const double bounds[] = {0.1, 1};
        struct metrics *m = metrics_new();
        struct metric *h = metrics_histogram(m, "lat_seconds", "Latency", NULL, bounds, 2);
        char *text;

        metric_observe(h, 0.05);
        metric_observe(h, 0.5);
        metric_observe(h, 5);
        text = metrics_render(m, NULL);
        cr_assert(strstr(text, "lat_seconds_bucket{le=\"0.1\"} 1\n"), "%s", text);
        cr_assert(strstr(text, "lat_seconds_bucket{le=\"1\"} 2\n"), "%s", text);
        cr_assert(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 3\n"), "%s", text);
        cr_assert(strstr(text, "lat_seconds_count 3\n"), "%s", text);
        cr_assert(strstr(text, "lat_seconds_sum 5.550000\n"), "%s", text);
        free(text);
        metrics_destroy(m);
}

Test(metrics, a_name_keeps_its_type)
{
        struct metrics *m = metrics_new();

        cr_assert_not_null(metrics_counter(m, "y", "Y", NULL));
        cr_assert_null(metrics_gauge(m, "y", "Y", "k=\"1\""));
        metrics_destroy(m);
}

static void *add_many(void *arg)
{
        struct metrics *m = arg;

        for (int i = 0; i < 100000; i++)
                metric_add(metrics_counter(m, "c_total", "C", i % 2 ? "p=\"odd\"" : "p=\"even\""),
                           1);
        return NULL;
}

Test(metrics, concurrent_adds_are_not_lost)
{
        struct metrics *m = metrics_new();
        pthread_t t[4];

        for (int i = 0; i < 4; i++)
                pthread_create(&t[i], NULL, add_many, m);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        cr_assert_eq(metric_value(metrics_counter(m, "c_total", "C", "p=\"odd\"")), 200000);
        cr_assert_eq(metric_value(metrics_counter(m, "c_total", "C", "p=\"even\"")), 200000);
        metrics_destroy(m);
}

Test(metrics, a_removed_series_is_not_rendered_until_registered_again)
{
        struct metrics *m = metrics_new();
        struct metric *a = metrics_gauge(m, "lag_seconds", "Lag", "partition=\"0\"");
        struct metric *b = metrics_gauge(m, "lag_seconds", "Lag", "partition=\"1\"");
        char *text;

        metric_set(a, 7);
        metric_set(b, 9);
        metrics_remove(a);
        text = metrics_render(m, NULL);
        cr_assert_null(strstr(text, "partition=\"0\""), "%s", text);
        cr_assert(strstr(text, "lag_seconds{partition=\"1\"} 9\n"), "%s", text);
        free(text);

        metrics_remove(b);
        text = metrics_render(m, NULL);
        cr_assert_null(strstr(text, "lag_seconds"), "no family without series: %s", text);
        free(text);

        cr_assert_eq(metrics_gauge(m, "lag_seconds", "Lag", "partition=\"0\""), a,
                     "registered again: the same series");
        text = metrics_render(m, NULL);
        cr_assert(strstr(text, "lag_seconds{partition=\"0\"} 0\n"), "shown again, reset: %s", text);
        cr_assert_null(strstr(text, "partition=\"1\""), "%s", text);
        free(text);
        metrics_destroy(m);
}

static double forty_two(void *arg)
{
        (void)arg;
        return 42.5;
}

Test(metrics, a_counter_read_at_scrape_time)
{
        struct metrics *m = metrics_new();
        char *text;

        metrics_counter_fn(m, "cpu_seconds_total", "CPU", NULL, forty_two, NULL);
        text = metrics_render(m, NULL);
        cr_assert(strstr(text, "# TYPE cpu_seconds_total counter\ncpu_seconds_total 42.5\n"), "%s",
                  text);
        free(text);
        metrics_destroy(m);
}
