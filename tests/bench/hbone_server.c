/*
 * zm-hbone-server — zmesh's HBONE server for the benchmark: one worker per
 * core (or --workers N), each with its own io_uring loop and an
 * SO_REUSEPORT listener; mTLS with the given certificate, CONNECT answered
 * by dialling :authority itself and splicing (hbone_lab's server).
 * SIGTERM/SIGINT stop it.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hbone_lab.h"
#include "workers.h"

typedef struct server_cfg {
    char ip[32];
    int port;
    zm_tls_ctx_t *tls;
} server_cfg_t;

static lab_server_t *servers[256];

static int worker_init(zm_loop_t *loop, unsigned idx, void *arg)
{
    server_cfg_t *cfg = arg;
    if (idx >= ZM_ARRAY_LEN(servers))
        return -EINVAL;
    int r =
        lab_server_start(&servers[idx], loop, cfg->ip, cfg->port, cfg->tls, ZM_LISTEN_REUSEPORT);
    if (r < 0)
        fprintf(stderr, "zm-hbone-server: worker %u: listen %s:%d: %s\n", idx, cfg->ip, cfg->port,
                strerror(-r));
    return r;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"cert", required_argument, 0, 'C'},
        {"key", required_argument, 0, 'K'},
        {"ca", required_argument, 0, 'A'},
        {"workers", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *listen_at = NULL, *cert = NULL, *key = NULL, *ca = NULL;
    unsigned workers = 0;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            listen_at = optarg;
            break;
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'A':
            ca = optarg;
            break;
        case 'w':
            workers = (unsigned)atoi(optarg);
            break;
        case 'h':
            printf("usage: zm-hbone-server --listen IP:PORT --cert C --key K --ca CA "
                   "[--workers N]\n");
            return 0;
        default:
            return 2;
        }
    }
    struct sockaddr_in sa;
    if (!listen_at || !cert || !key || !ca || lab_parse_addr(listen_at, &sa) < 0) {
        fprintf(stderr, "usage: zm-hbone-server --listen IP:PORT --cert C --key K --ca CA\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    server_cfg_t cfg = {.port = ntohs(sa.sin_port)};
    inet_ntop(AF_INET, &sa.sin_addr, cfg.ip, sizeof(cfg.ip));
    cfg.tls = lab_tls_ctx_files(cert, key, ca, true);
    if (!cfg.tls)
        return 2;
    zm_workers_config_t wc = {.count = workers, .init = worker_init, .arg = &cfg};
    zm_workers_t *w;
    if (zm_workers_start(&w, &wc) < 0) {
        fprintf(stderr, "zm-hbone-server: cannot start workers\n");
        return 1;
    }
    zm_workers_wait_signal();
    zm_workers_destroy(&w);
    zm_tls_ctx_unref(&cfg.tls);
    return 0;
}
