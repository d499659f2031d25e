/*
 * main.c — `zm-echo`: the sandbox's echo application.
 *
 *   zm-echo [--listen PORT]... [--ports P1,P2,...] [--bind IP]
 *           [--pod NAME] [--namespace NS] [--version V]
 *           [--status N] [--delay-ms MS] [--fail FRACTION] [--log-level L]
 *
 * Serves HTTP/1.1, h2c (prior knowledge) and raw TCP echo on every port
 * given (8080 when none), telling them apart by the first bytes; see
 * echo.h for the protocol and echo_reply.c for the JSON body and the
 * per-request options. --pod/--namespace/--version fall back to the
 * environment (POD_NAME, POD_NAMESPACE, POD_VERSION). Port 0 binds an
 * ephemeral port. For each listener one line goes to stdout once it is
 * listening: "zm-echo: listening on IP:PORT" (tests read the port there).
 *
 * SIGTERM or SIGINT stops the loop; every connection is freed and the
 * process exits 0. Usage errors exit 2, set-up failures exit 1.
 *
 * Threading: one thread, one io_uring loop.
 */
#include "echo.h"
#include "log.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PORTS 64

static zm_loop_t *volatile g_loop;

static void on_signal(int sig)
{
    if (g_loop)
        zm_loop_stop(g_loop);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: zm-echo [--listen PORT]... [--ports P1,P2,...] [--bind IP]\n"
               "               [--pod NAME] [--namespace NS] [--version V]\n"
               "               [--status N] [--delay-ms MS] [--fail FRACTION]\n"
               "               [--log-level LEVEL]\n"
               "HTTP/1.1, h2c and raw TCP echo on each port (default 8080).\n"
               "Per request: ?status=N&delay=MS&size=N&fail=F or x-echo-<option> headers.\n");
}

static int parse_port(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 65535)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int add_ports(const char *list, unsigned *ports, size_t *n)
{
    char buf[1024];
    if (strlen(list) >= sizeof(buf))
        return -1;
    strcpy(buf, list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_PORTS || parse_port(tok, &ports[*n]) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

static int make_addr(const char *ip, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_PORTS,
        O_BIND,
        O_POD,
        O_NS,
        O_VERSION,
        O_STATUS,
        O_DELAY,
        O_FAIL,
        O_LOG,
        O_HELP
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"ports", required_argument, NULL, O_PORTS},
        {"bind", required_argument, NULL, O_BIND},
        {"pod", required_argument, NULL, O_POD},
        {"namespace", required_argument, NULL, O_NS},
        {"version", required_argument, NULL, O_VERSION},
        {"status", required_argument, NULL, O_STATUS},
        {"delay-ms", required_argument, NULL, O_DELAY},
        {"fail", required_argument, NULL, O_FAIL},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    mc_echo_srv_t srv = {0};
    mc_echo_cfg_t *cfg = &srv.cfg;
    unsigned ports[MAX_PORTS];
    size_t n_ports = 0;
    const char *bind_ip = "0.0.0.0";
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case O_LISTEN:
            if (n_ports == MAX_PORTS || parse_port(optarg, &ports[n_ports]) < 0)
                goto bad;
            n_ports++;
            break;
        case O_PORTS:
            if (add_ports(optarg, ports, &n_ports) < 0)
                goto bad;
            break;
        case O_BIND:
            bind_ip = optarg;
            break;
        case O_POD:
            cfg->pod = optarg;
            break;
        case O_NS:
            cfg->ns = optarg;
            break;
        case O_VERSION:
            cfg->version = optarg;
            break;
        case O_STATUS: {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 200 || v > 599)
                goto bad;
            cfg->status = (int)v;
            break;
        }
        case O_DELAY: {
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end || v > MC_ECHO_MAX_DELAY_MS)
                goto bad;
            cfg->delay_ms = v;
            break;
        }
        case O_FAIL: {
            double f = strtod(optarg, &end);
            if (!*optarg || *end || !isfinite(f) || f < 0 || f > 1)
                goto bad;
            cfg->fail_ppm = (uint32_t)lround(f * 1e6);
            break;
        }
        case O_LOG: {
            int lvl = zm_log_level_parse(optarg);
            if (lvl < 0)
                goto bad;
            zm_log_set_level((zm_log_level_t)lvl);
            break;
        }
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "zm-echo: bad value for --%s: %s\n", longopts[opt - O_LISTEN].name, optarg);
        return 2;
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!cfg->pod)
        cfg->pod = getenv("POD_NAME");
    if (!cfg->ns)
        cfg->ns = getenv("POD_NAMESPACE");
    if (!cfg->version)
        cfg->version = getenv("POD_VERSION");
    if (n_ports == 0)
        ports[n_ports++] = 8080;

    struct sockaddr_storage ss;
    socklen_t ss_len;
    if (make_addr(bind_ip, 0, &ss, &ss_len) < 0) {
        fprintf(stderr, "zm-echo: bad value for --bind: %s\n", bind_ip);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    zm_loop_config_t lc = {.recv_buf_count = 256, .max_socks = 4096};
    zm_loop_config_defaults(&lc);
    int rc = zm_loop_new(&srv.loop, &lc);
    if (rc < 0) {
        fprintf(stderr, "zm-echo: io_uring loop: %s\n", strerror(-rc));
        return 1;
    }
    /* Handlers before the "listening" lines: whoever reads them may signal. */
    g_loop = srv.loop;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int status = 0;
    for (size_t i = 0; i < n_ports; i++) {
        make_addr(bind_ip, ports[i], &ss, &ss_len);
        zm_listener_t *l;
        rc = zm_listener_new(&l, srv.loop, (struct sockaddr *)&ss, ss_len, 0, mc_echo_on_accept,
                             &srv);
        if (rc < 0) {
            fprintf(stderr, "zm-echo: listen on %s:%u: %s\n", bind_ip, ports[i], strerror(-rc));
            status = 1;
            goto out;
        }
        printf("zm-echo: listening on %s:%d\n", bind_ip, zm_listener_port(l));
    }
    fflush(stdout);
    rc = zm_loop_run(srv.loop);
    if (rc < 0) {
        fprintf(stderr, "zm-echo: loop: %s\n", strerror(-rc));
        status = 1;
    }
out:
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    g_loop = NULL;
    /* The loop closes sockets without callbacks: free our side first, while
     * timers can still be stopped. */
    mc_echo_conn_free_all(&srv);
    zm_loop_destroy(&srv.loop);
    return status;
}
