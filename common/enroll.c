/*
 * enroll.c — JSON messages over unix SOCK_SEQPACKET with SCM_RIGHTS for the
 * network namespace fd (see enroll.h). SEQPACKET keeps message boundaries,
 * so a message is exactly one recvmsg; MSG_TRUNC tells us when a peer sent
 * more than ZM_ENROLL_MSG_MAX and the message is refused, not misparsed.
 */
#include "enroll.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *const type_names[] = {
    [ZM_ENROLL_ADD] = "add",
    [ZM_ENROLL_DEL] = "del",
    [ZM_ENROLL_SNAPSHOT_SENT] = "snapshot_sent",
    [ZM_ENROLL_ACK] = "ack",
};

const char *zm_enroll_type_name(zm_enroll_type_t t)
{
    return t >= ZM_ENROLL_ADD && t <= ZM_ENROLL_ACK ? type_names[t] : "?";
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

int zm_enroll_listen(const char *path)
{
    struct sockaddr_un sa;
    int r = unix_addr(path, &sa);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int zm_enroll_connect(const char *path)
{
    struct sockaddr_un sa;
    int r = unix_addr(path, &sa);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int zm_enroll_send(int sock, const zm_enroll_msg_t *m)
{
    json_t *o = json_pack("{s:s}", "type", zm_enroll_type_name(m->type));
    if (!o)
        return -ENOMEM;
    switch (m->type) {
    case ZM_ENROLL_ADD:
        json_object_set_new(o, "name", json_string(m->name));
        json_object_set_new(o, "namespace", json_string(m->ns));
        json_object_set_new(o, "service_account", json_string(m->service_account));
        /* fall through */
    case ZM_ENROLL_DEL:
        json_object_set_new(o, "uid", json_string(m->uid));
        break;
    case ZM_ENROLL_ACK:
        json_object_set_new(o, "error", json_string(m->error));
        break;
    case ZM_ENROLL_SNAPSHOT_SENT:
        break;
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return -ENOMEM;
    size_t len = strlen(text);
    if (len > ZM_ENROLL_MSG_MAX) {
        free(text);
        return -EMSGSIZE;
    }
    struct iovec iov = {.iov_base = text, .iov_len = len};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (m->type == ZM_ENROLL_ADD && m->netns_fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &m->netns_fd, sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    int r = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    free(text);
    return r;
}

static int copy_field(json_t *o, const char *key, char *out, size_t len, bool required)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return required ? -EBADMSG : 0;
    const char *s = json_string_value(v);
    if (!s || strlen(s) >= len)
        return -EBADMSG;
    strcpy(out, s);
    return 0;
}

static int parse(const char *text, size_t len, zm_enroll_msg_t *m)
{
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -EBADMSG;
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    int r = -EBADMSG;
    for (int t = ZM_ENROLL_ADD; type && t <= ZM_ENROLL_ACK; t++)
        if (!strcmp(type, type_names[t]))
            m->type = (zm_enroll_type_t)t, r = 0;
    if (r == 0 && (m->type == ZM_ENROLL_ADD || m->type == ZM_ENROLL_DEL))
        r = copy_field(o, "uid", m->uid, sizeof(m->uid), true);
    if (r == 0 && m->type == ZM_ENROLL_ADD) {
        r = copy_field(o, "name", m->name, sizeof(m->name), true);
        if (r == 0)
            r = copy_field(o, "namespace", m->ns, sizeof(m->ns), true);
        if (r == 0)
            r = copy_field(o, "service_account", m->service_account, sizeof(m->service_account),
                           false);
    }
    if (r == 0 && m->type == ZM_ENROLL_ACK)
        r = copy_field(o, "error", m->error, sizeof(m->error), false);
    if (r == 0 && m->type == ZM_ENROLL_ADD && m->uid[0] == 0)
        r = -EBADMSG;
    json_decref(o);
    return r;
}

int zm_enroll_recv(int sock, zm_enroll_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    m->netns_fd = -1;
    char text[ZM_ENROLL_MSG_MAX + 1];
    struct iovec iov = {.iov_base = text, .iov_len = sizeof(text)};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } ctl;
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl)};
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (fd < 0)
                fd = got;
            else
                close(got); /* only one fd belongs to a message */
        }
    }
    if (n == 0) {
        if (fd >= 0)
            close(fd);
        return -ECONNRESET;
    }
    int r = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? -EBADMSG : parse(text, (size_t)n, m);
    if (r == 0 && m->type == ZM_ENROLL_ADD && fd < 0)
        r = -EBADMSG; /* an add without its namespace cannot be served */
    if (r < 0 || m->type != ZM_ENROLL_ADD) {
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    m->netns_fd = fd;
    return r;
}

int zm_enroll_ack(int sock, const char *error)
{
    zm_enroll_msg_t m = {.type = ZM_ENROLL_ACK, .netns_fd = -1};
    snprintf(m.error, sizeof(m.error), "%s", error ? error : "");
    return zm_enroll_send(sock, &m);
}

int zm_enroll_wait_ack(int sock, char *error, size_t len)
{
    zm_enroll_msg_t m;
    int r = zm_enroll_recv(sock, &m);
    if (r < 0)
        return r;
    if (m.type != ZM_ENROLL_ACK)
        return -EBADMSG;
    if (error && len)
        snprintf(error, len, "%s", m.error);
    return m.error[0] ? -EREMOTEIO : 0;
}
