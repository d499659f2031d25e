/*
 * The sandbox's pure parts: the model → network plan mapping (nodes and
 * their addresses, pods, services with endpoints merged over ports and
 * named target ports kept per endpoint, headless services) and the node
 * agent against a fake ztunnel enrollment server on a thread (adds with a
 * namespace fd each, snapshot_sent last, a nack, a server that never acks,
 * no server at all). Every wait is bounded (socket timeouts, alarm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enroll.h"
#include "model.h"
#include "sandbox.h"

static const char YAML[] = "apiVersion: v1\n"
                           "kind: Namespace\n"
                           "metadata:\n"
                           "  name: shop\n"
                           "  labels: {istio.io/dataplane-mode: ambient}\n"
                           "---\n"
                           "apiVersion: apps/v1\n"
                           "kind: Deployment\n"
                           "metadata: {name: web, namespace: shop}\n"
                           "spec:\n"
                           "  replicas: 3\n"
                           "  selector: {matchLabels: {app: web}}\n"
                           "  template:\n"
                           "    metadata: {labels: {app: web, version: v1}}\n"
                           "    spec:\n"
                           "      containers:\n"
                           "      - name: web\n"
                           "        ports:\n"
                           "        - {containerPort: 8080, name: http}\n"
                           "        - {containerPort: 9090, name: admin}\n"
                           "---\n"
                           "apiVersion: v1\n"
                           "kind: Service\n"
                           "metadata: {name: web, namespace: shop}\n"
                           "spec:\n"
                           "  selector: {app: web}\n"
                           "  ports:\n"
                           "  - {name: http, port: 80, targetPort: http}\n"
                           "  - {name: admin, port: 90, targetPort: 9090}\n"
                           "---\n"
                           "apiVersion: v1\n"
                           "kind: Service\n"
                           "metadata: {name: db, namespace: shop}\n"
                           "spec:\n"
                           "  clusterIP: None\n"
                           "  selector: {app: db}\n"
                           "  ports:\n"
                           "  - {port: 5432}\n";

static void test_plan_maps_model(void **state)
{
    (void)state;
    mc_model_t *m = NULL;
    zm_err_t err = {0};
    assert_int_equal(mc_model_load_string(&m, "t.yaml", YAML, strlen(YAML), &err), 0);
    mc_resolve_opts_t ro = {.nodes = 2};
    assert_int_equal(mc_model_resolve(m, &ro, &err), 0);
    mc_sandbox_plan_t p;
    assert_int_equal(mc_sandbox_plan_build(m, "zmt-x", "/tmp/none", &p), 0);
    assert_int_equal(mc_net_plan_check(&p.net, &err), 0);

    assert_string_equal(p.net.prefix, "zmt-x");
    assert_string_equal(p.net.gateway, MC_SANDBOX_GATEWAY);
    assert_int_equal(p.net.prefix_len, 16);
    assert_int_equal(p.net.n_nodes, 2);
    assert_string_equal(p.net.nodes[0].name, "node-1");
    assert_string_equal(p.net.nodes[0].ip, "10.244.0.2");
    assert_string_equal(p.net.nodes[0].pod_cidr, "10.244.1.0/24");
    assert_string_equal(p.net.nodes[1].ip, "10.244.0.3");

    assert_int_equal(p.net.n_pods, 3);
    for (size_t i = 0; i < p.net.n_pods; i++) {
        assert_string_equal(p.net.pods[i].ns, "shop");
        assert_string_equal(p.net.pods[i].ip, m->pods[i].ip_str);
        assert_string_equal(p.net.pods[i].node, m->pods[i].node->name);
    }

    assert_int_equal(p.net.n_services, 2);
    const mc_net_service_t *db = &p.net.services[0], *web = &p.net.services[1];
    assert_string_equal(db->name, "db");
    assert_null(db->cluster_ip); /* headless: no NAT, no hosts line */
    assert_string_equal(web->name, "web");
    assert_non_null(web->cluster_ip);
    assert_int_equal(web->n_ports, 2);
    assert_int_equal(web->ports[0].port, 80);
    assert_int_equal(web->ports[1].port, 90);
    assert_int_equal(web->ports[1].target_port, 9090);
    /* Three pods, each endpoint of both ports, merged into one list. */
    assert_int_equal(web->n_endpoints, 3);
    for (size_t i = 0; i < web->n_endpoints; i++) {
        assert_non_null(web->endpoints[i].target_ports);
        assert_int_equal(web->endpoints[i].target_ports[0], 8080); /* the name "http" */
        assert_int_equal(web->endpoints[i].target_ports[1], 9090);
        for (size_t j = i + 1; j < web->n_endpoints; j++)
            assert_string_not_equal(web->endpoints[i].ip, web->endpoints[j].ip);
    }
    char ip[16];
    mc_sandbox_node_ip(&m->nodes[1], ip);
    assert_string_equal(ip, "10.244.0.3");
    mc_sandbox_plan_clear(&p);
    assert_null(p.pods);
    mc_model_free(&m);
}

/* ---- the agent against a fake ztunnel ---- */

typedef struct fake {
    char path[108];
    int lsock;
    int mode; /* 0: ack all, 1: nack the second add, 2: never ack */
    char uids[8][128];
    int n_adds;
    int fds_ok;
    bool snapshot;
    bool snapshot_after_adds;
} fake_t;

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    int c = accept(f->lsock, NULL, NULL);
    if (c < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;) {
        zm_enroll_msg_t m;
        if (zm_enroll_recv(c, &m) < 0)
            break;
        if (m.type == ZM_ENROLL_ADD) {
            struct stat st;
            if (m.netns_fd >= 0 && fstat(m.netns_fd, &st) == 0)
                f->fds_ok++;
            if (m.netns_fd >= 0)
                close(m.netns_fd);
            if (f->n_adds < 8)
                snprintf(f->uids[f->n_adds], sizeof(f->uids[0]), "%s", m.uid);
            f->n_adds++;
            if (f->mode == 2)
                continue;
            zm_enroll_ack(c, f->mode == 1 && f->n_adds == 2 ? "no such netns" : "");
        } else if (m.type == ZM_ENROLL_SNAPSHOT_SENT) {
            f->snapshot = true;
            f->snapshot_after_adds = f->n_adds > 0;
            zm_enroll_ack(c, "");
        }
    }
    close(c);
    return NULL;
}

static void fake_start(fake_t *f, int mode, pthread_t *th)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/zmt-agent-%d.sock", (int)getpid());
    f->mode = mode;
    f->lsock = zm_enroll_listen(f->path);
    assert_true(f->lsock >= 0);
    assert_int_equal(pthread_create(th, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f, pthread_t th)
{
    pthread_join(th, NULL);
    close(f->lsock);
    unlink(f->path);
}

static const mc_agent_pod_t PODS[] = {
    {.uid = "shop/web-0",
     .name = "web-0",
     .ns = "shop",
     .service_account = "default",
     .netns = "/proc/self/ns/net"},
    {.uid = "shop/web-1",
     .name = "web-1",
     .ns = "shop",
     .service_account = "default",
     .netns = "/proc/self/ns/net"},
};

static void test_agent_sync(void **state)
{
    (void)state;
    alarm(20);
    fake_t f;
    pthread_t th;
    fake_start(&f, 0, &th);
    zm_err_t err = {0};
    assert_int_equal(mc_agent_sync(f.path, PODS, 2, 2000, &err), 0);
    fake_stop(&f, th);
    assert_int_equal(f.n_adds, 2);
    assert_int_equal(f.fds_ok, 2);
    assert_string_equal(f.uids[0], "shop/web-0");
    assert_string_equal(f.uids[1], "shop/web-1");
    assert_true(f.snapshot);
    assert_true(f.snapshot_after_adds);

    /* An empty node still sends its (empty) snapshot. */
    fake_start(&f, 0, &th);
    assert_int_equal(mc_agent_sync(f.path, NULL, 0, 2000, &err), 0);
    fake_stop(&f, th);
    assert_int_equal(f.n_adds, 0);
    assert_true(f.snapshot);
    alarm(0);
}

static void test_agent_nack(void **state)
{
    (void)state;
    alarm(20);
    fake_t f;
    pthread_t th;
    fake_start(&f, 1, &th);
    zm_err_t err = {0};
    assert_int_equal(mc_agent_sync(f.path, PODS, 2, 2000, &err), -EREMOTEIO);
    fake_stop(&f, th);
    assert_non_null(strstr(err.msg, "no such netns"));
    assert_non_null(strstr(err.msg, "shop/web-1"));
    assert_false(f.snapshot);
    alarm(0);
}

static void test_agent_timeouts(void **state)
{
    (void)state;
    alarm(20);
    fake_t f;
    pthread_t th;
    fake_start(&f, 2, &th);
    zm_err_t err = {0};
    assert_int_equal(mc_agent_sync(f.path, PODS, 2, 200, &err), -ETIMEDOUT);
    fake_stop(&f, th);
    assert_int_equal(f.n_adds, 1);

    /* Nobody listens: retried until the bound, then -ETIMEDOUT. */
    char path[108];
    snprintf(path, sizeof(path), "/tmp/zmt-agent-none-%d.sock", (int)getpid());
    assert_int_equal(mc_agent_sync(path, PODS, 2, 100, &err), -ETIMEDOUT);
    /* A pod whose namespace cannot be opened fails before anything is sent. */
    fake_start(&f, 0, &th);
    mc_agent_pod_t bad = PODS[0];
    bad.netns = "/nonexistent/ns";
    assert_int_equal(mc_agent_sync(f.path, &bad, 1, 2000, &err), -ENOENT);
    fake_stop(&f, th);
    assert_int_equal(f.n_adds, 0);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_maps_model),
        cmocka_unit_test(test_agent_sync),
        cmocka_unit_test(test_agent_nack),
        cmocka_unit_test(test_agent_timeouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
