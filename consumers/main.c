/* liveflow-consumer: runs one consumer role (a Kafka consumer group) until SIGTERM, then drains. */
#include "roles.h"
#include "settings.h"
#include "worker_main.h"

int main(int argc, char **argv)
{
        return worker_main("liveflow-consumer", roles_all, SETTINGS_CONSUMER, argc, argv);
}
