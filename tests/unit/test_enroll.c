/*
 * The enrollment protocol: messages survive the trip with their netns fd,
 * malformed or oversized packets are refused and leak no fd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enroll.h"

static int pair[2];

static int setup(void **state)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    return 0;
}

static int teardown(void **state)
{
    close(pair[0]);
    close(pair[1]);
    return 0;
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return n;
}

static void add_carries_the_namespace_fd(void **state)
{
    int ns = open("/proc/self/ns/net", O_RDONLY);
    assert_true(ns >= 0);
    zm_enroll_msg_t out = {.type = ZM_ENROLL_ADD, .netns_fd = ns};
    strcpy(out.uid, "default/productpage-0");
    strcpy(out.name, "productpage-0");
    strcpy(out.ns, "default");
    strcpy(out.service_account, "bookinfo-productpage");
    assert_int_equal(zm_enroll_send(pair[0], &out), 0);
    zm_enroll_msg_t in;
    assert_int_equal(zm_enroll_recv(pair[1], &in), 0);
    assert_int_equal(in.type, ZM_ENROLL_ADD);
    assert_string_equal(in.uid, "default/productpage-0");
    assert_string_equal(in.name, "productpage-0");
    assert_string_equal(in.ns, "default");
    assert_string_equal(in.service_account, "bookinfo-productpage");
    assert_true(in.netns_fd >= 0 && in.netns_fd != ns);
    struct stat a, b;
    assert_int_equal(fstat(ns, &a), 0);
    assert_int_equal(fstat(in.netns_fd, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev); /* the same namespace */
    close(in.netns_fd);
    close(ns);
}

static void del_snapshot_and_ack_round_trip(void **state)
{
    zm_enroll_msg_t del = {.type = ZM_ENROLL_DEL, .netns_fd = -1};
    strcpy(del.uid, "ns/pod");
    zm_enroll_msg_t snap = {.type = ZM_ENROLL_SNAPSHOT_SENT, .netns_fd = -1};
    assert_int_equal(zm_enroll_send(pair[0], &del), 0);
    assert_int_equal(zm_enroll_send(pair[0], &snap), 0);
    zm_enroll_msg_t in;
    assert_int_equal(zm_enroll_recv(pair[1], &in), 0);
    assert_int_equal(in.type, ZM_ENROLL_DEL);
    assert_string_equal(in.uid, "ns/pod");
    assert_int_equal(in.netns_fd, -1);
    assert_int_equal(zm_enroll_recv(pair[1], &in), 0);
    assert_int_equal(in.type, ZM_ENROLL_SNAPSHOT_SENT);

    assert_int_equal(zm_enroll_ack(pair[1], NULL), 0);
    assert_int_equal(zm_enroll_wait_ack(pair[0], NULL, 0), 0);
    char err[64];
    assert_int_equal(zm_enroll_ack(pair[1], "netns unusable"), 0);
    assert_int_equal(zm_enroll_wait_ack(pair[0], err, sizeof(err)), -EREMOTEIO);
    assert_string_equal(err, "netns unusable");
}

static void refuse(const char *packet, bool with_fd)
{
    int before = open_fds();
    int fd = with_fd ? open("/proc/self/ns/net", O_RDONLY) : -1;
    struct iovec iov = {.iov_base = (void *)packet, .iov_len = strlen(packet)};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    assert_true(sendmsg(pair[0], &msg, 0) >= 0);
    if (fd >= 0)
        close(fd);
    zm_enroll_msg_t in;
    assert_int_equal(zm_enroll_recv(pair[1], &in), -EBADMSG);
    assert_int_equal(in.netns_fd, -1);
    assert_int_equal(open_fds(), before); /* the fd that came along was closed */
}

static void malformed_messages_are_refused_without_leaks(void **state)
{
    refuse("not json", true);
    refuse("{\"type\":\"launch\"}", true);
    refuse("{\"type\":\"add\",\"name\":\"a\",\"namespace\":\"b\"}", true); /* no uid */
    refuse("{\"type\":\"add\",\"uid\":\"u\",\"name\":\"a\",\"namespace\":\"b\"}", false);
    refuse("{\"type\":\"del\",\"uid\":7}", false);
    refuse("{\"type\":\"del\",\"uid\":\"a\",\"uid\":\"b\"}", false);
    static char big[ZM_ENROLL_MSG_MAX + 64];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    refuse(big, true);
}

static void listen_and_connect_over_a_path(void **state)
{
    char dir[] = "/tmp/zm-enroll-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/ztunnel.sock", dir);
    int l = zm_enroll_listen(path);
    assert_true(l >= 0);
    int l2 = zm_enroll_listen(path); /* a stale socket file is replaced */
    assert_true(l2 >= 0);
    close(l);
    int c = zm_enroll_connect(path);
    assert_true(c >= 0);
    int a = accept(l2, NULL, NULL);
    assert_true(a >= 0);
    zm_enroll_msg_t snap = {.type = ZM_ENROLL_SNAPSHOT_SENT, .netns_fd = -1}, in;
    assert_int_equal(zm_enroll_send(c, &snap), 0);
    assert_int_equal(zm_enroll_recv(a, &in), 0);
    assert_int_equal(in.type, ZM_ENROLL_SNAPSHOT_SENT);
    close(c);
    assert_int_equal(zm_enroll_recv(a, &in), -ECONNRESET);
    close(a);
    close(l2);
    unlink(path);
    rmdir(dir);
    assert_true(zm_enroll_connect(path) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(add_carries_the_namespace_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(del_snapshot_and_ack_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_messages_are_refused_without_leaks, setup,
                                        teardown),
        cmocka_unit_test(listen_and_connect_over_a_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
