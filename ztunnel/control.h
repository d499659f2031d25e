/*
 * control.h — ztunnel's control loop (control.c): enrollment, capture,
 * reloads, signals. Runs on the calling thread until SIGTERM/SIGINT, then
 * drains the workers; returns 0, or -errno if it could not start.
 */
#ifndef ZT_CONTROL_H
#define ZT_CONTROL_H

#include "zt.h"

int zt_control_run(zt_daemon_t *d);

#endif
