/*
 * enroll.h — the workload enrollment protocol between a node agent and
 * ztunnel (DESIGN.md "Workload enrollment"), the same in Kubernetes (a CNI
 * plugin is the agent) and in the sandbox (meshctl is).
 *
 * A unix SOCK_SEQPACKET connection; one message per packet, a JSON object:
 *   agent → ztunnel  {"type":"add","uid","name","namespace","service_account"}
 *                    with the pod's network namespace fd as SCM_RIGHTS;
 *                    {"type":"del","uid"}; {"type":"snapshot_sent"}
 *   ztunnel → agent  {"type":"ack","error":""} after every message
 * After connecting, the agent sends every current workload (add), then
 * snapshot_sent: ztunnel then releases any workload it holds that was not in
 * the snapshot — which is how a restarted agent or ztunnel converges. JSON
 * rather than Istio's protobuf keeps it debuggable with socat; the flow is
 * Istio's ZDS.
 *
 * Functions block (the control thread's job, never a worker's). Malformed
 * messages are -EBADMSG, and an fd that came with one is closed.
 */
#ifndef ZM_ENROLL_H
#define ZM_ENROLL_H

#include "zm.h"

#define ZM_ENROLL_MSG_MAX 4096

typedef enum zm_enroll_type {
    ZM_ENROLL_ADD = 1,
    ZM_ENROLL_DEL,
    ZM_ENROLL_SNAPSHOT_SENT,
    ZM_ENROLL_ACK,
} zm_enroll_type_t;

typedef struct zm_enroll_msg {
    zm_enroll_type_t type;
    char uid[128];
    char name[128];
    char ns[64];
    char service_account[64];
    char error[256]; /* ack: empty on success */
    int netns_fd;    /* add: owned by the receiver; -1 otherwise */
} zm_enroll_msg_t;

/* A listening socket at path (a stale socket file is replaced). */
int zm_enroll_listen(const char *path);
/* Connects to path; -errno when nobody listens. */
int zm_enroll_connect(const char *path);

/* Sends one message (with m->netns_fd for add). */
int zm_enroll_send(int sock, const zm_enroll_msg_t *m);
/* Receives one message: 0, -ECONNRESET at end of stream, -EBADMSG. */
int zm_enroll_recv(int sock, zm_enroll_msg_t *m);

/* Convenience: an ack with an optional error, and waiting for one (returns
 * 0, or -EREMOTEIO with the peer's error copied into error). */
int zm_enroll_ack(int sock, const char *error);
int zm_enroll_wait_ack(int sock, char *error, size_t len);

const char *zm_enroll_type_name(zm_enroll_type_t t);

#endif
