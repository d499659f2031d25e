/*
 * ztunnel — zmesh's node proxy. main only wires: options, config, logging,
 * certificates, metrics, workers, admin, then the control loop until
 * SIGTERM (see zt.h for the architecture).
 */
#include "admin.h"
#include "control.h"
#include "log.h"
#include "telemetry.h"
#include "zt.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: ztunnel --config FILE\n"
               "  zmesh's node proxy: captures the TCP of enrolled pods and carries it in\n"
               "  mTLS HBONE tunnels. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or\n"
               "  invalid config.\n");
}

static char *dump_config(void *arg)
{
    zt_daemon_t *d = arg;
    const zm_config_t *cfg = zm_config_slot_acquire(d->config);
    char *s = zm_config_dump_string(cfg);
    zm_config_release(&cfg);
    return s;
}

static char *dump_workloads(void *arg)
{
    zt_daemon_t *d = arg;
    pthread_mutex_lock(&d->workloads_mu);
    char *s = strdup(d->workloads_json ? d->workloads_json : "[]");
    pthread_mutex_unlock(&d->workloads_mu);
    return s;
}

/* The access log sink of log.access_log: stderr, stdout, off or a file. */
static int open_access_log(const char *where)
{
    if (!strcmp(where, "off"))
        return -1;
    if (!strcmp(where, "stderr"))
        return 2;
    if (!strcmp(where, "stdout"))
        return 1;
    return open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static char *dump_certs(void *arg)
{
    return zt_certs_dump(((zt_daemon_t *)arg)->certs);
}

/* Config port 0 means "no listener"; the admin module spells that -1. */
static int port_or_off(uint16_t port)
{
    return port ? port : -1;
}

static bool is_ready(void *arg)
{
    return atomic_load(&((zt_daemon_t *)arg)->ready);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *config_path = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (o == 'c')
            config_path = optarg;
        else if (o == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!config_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread exists, so every thread inherits the mask and the
     * control loop's signalfd is the only taker of SIGTERM/SIGINT/SIGHUP. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    zt_daemon_t d = {.config_path = config_path};
    pthread_mutex_init(&d.workloads_mu, NULL);
    zm_err_t err = {0};
    char buf[1024];
    d.config = zm_config_slot_new(config_path, &err);
    if (!d.config) {
        fprintf(stderr, "ztunnel: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        return 2;
    }
    const zm_config_t *cfg = zm_config_slot_acquire(d.config);
    zm_log_set_level((zm_log_level_t)zm_log_level_parse(zm_config_log_level_name(cfg->log.level)));
    if (cfg->log.format == ZM_CONFIG_LOG_JSON)
        zm_log_set_format(ZM_LOG_JSON);
    int access_fd = open_access_log(cfg->log.access_log);
    if (access_fd < 0 && strcmp(cfg->log.access_log, "off") != 0)
        fprintf(stderr, "ztunnel: cannot open access log %s: %s\n", cfg->log.access_log,
                strerror(errno));
    zm_log_set_access_fd(access_fd);
    d.host_netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    zt_certs_new(&d.certs, cfg->tls.cert_dir, cfg->node.trust_domain);
    zm_metrics_new(&d.metrics);
    zt_telemetry_new(&d.telemetry, d.metrics, NULL);
    zm_workers_config_t wc = {
        .count = cfg->workers,
        .init = zt_worker_init,
        .drain = zt_worker_drain,
        .fini = zt_worker_fini,
        .arg = &d,
        /* 32 x 64 KiB receive buffers per worker: a bulk stream arrives in
         * 64 KiB pieces (a quarter of the receive calls and completions of
         * 16 KiB ones, four TLS records per read). A buffer goes back to the
         * ring as soon as its bytes are handed on, so a deeper ring would
         * only cost resident memory (2 MiB per worker here). */
        .loop = {.recv_buf_count = 32,
                 .recv_buf_size = 64 * 1024,
                 /* Sockets are the connection limit: one more is refused at
                  * accept, never an abort. Slots cost memory only once used. */
                 .max_socks = cfg->limits.max_connections,
                 /* Four whole TLS records (16 KiB + 22 bytes each) per send
                  * chunk: records are sealed in place there, and a 64 KiB
                  * DATA frame then takes exactly four of them. */
                 .send_chunk_size = 4 * (16384 + 22),
                 .send_queue_limit = cfg->limits.send_queue_bytes},
    };
    d.n_workers = cfg->workers ? cfg->workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    wc.count = d.n_workers;
    d.worker = calloc(d.n_workers, sizeof(*d.worker));
    zt_admin_sources_t src = {
        .config_dump = dump_config,
        .certs = dump_certs,
        .workloads = dump_workloads,
        .ready = is_ready,
        .metrics = d.metrics,
        .arg = &d,
    };
    zt_admin_t *admin = NULL;
    int rc = 0;
    if (zm_workers_start(&d.workers, &wc) < 0) {
        fprintf(stderr, "ztunnel: cannot start workers (io_uring?)\n");
        rc = 1;
    } else if (zt_admin_start(&admin, cfg->listen.admin_address, port_or_off(cfg->listen.admin),
                              NULL, port_or_off(cfg->listen.metrics),
                              port_or_off(cfg->listen.readiness), &src, &err) < 0) {
        fprintf(stderr, "ztunnel: admin: %s\n", zm_err_str(&err, buf, sizeof(buf)));
        rc = 1;
    }
    zm_config_release(&cfg);
    if (rc == 0) {
        zm_log(ZM_LOG_INFO, NULL, "ztunnel started with %u workers", d.n_workers);
        if (zt_control_run(&d) < 0)
            rc = 1;
    }
    zt_admin_stop(&admin);
    zm_workers_destroy(&d.workers);
    free(d.worker);
    zt_certs_free(&d.certs);
    zt_telemetry_free(&d.telemetry);
    zm_metrics_free(&d.metrics);
    zm_config_slot_destroy(&d.config);
    if (d.host_netns_fd >= 0)
        close(d.host_netns_fd);
    if (access_fd > 2)
        close(access_fd);
    free(d.workloads_json);
    pthread_mutex_destroy(&d.workloads_mu);
    return rc;
}
