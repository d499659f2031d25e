/*
 * capture.h — in-pod traffic redirection: the nftables rules, the policy
 * routing and the socket marks that send an ambient pod's TCP through
 * ztunnel's listeners inside the pod's network namespace.
 *
 * The rules (table `ip zmesh-capture`, one per pod netns, applied in one
 * nftables transaction) are Istio's in-pod set in its REDIRECT variant
 * (istio/istio cni/pkg/iptables/iptables.go):
 *
 *   nat output, priority -100 (dstnat, i.e. before the sandbox's
 *   kube-proxy style DNAT at dstnat+10, so ztunnel sees the service VIP;
 *   the first NAT of a connection wins): packets marked 0x539 or 0x111
 *   (ztunnel's sockets), to lo, to 127/8 or to the probe address
 *   169.254.7.127 pass; any other TCP → REDIRECT :15001.
 *
 *   nat prerouting, priority -100: from lo, to 127/8, to tcp port 15008
 *   (HBONE reaches ztunnel's own listener) or from the probe address pass;
 *   any other TCP → REDIRECT :15006.
 *
 *   route output, priority mangle: connmark for the transparent sockets.
 *
 * Both listeners learn where the connection was going from SO_ORIGINAL_DST
 * (zt_original_dst).
 *
 * Two marks, because two kinds of ztunnel socket need different routing:
 *
 *   ZT_MARK (0x539): every ordinary ztunnel socket in a pod (listeners,
 *   outbound HBONE to <peer>:15008, plain passthrough, inbound connections
 *   to the app that do not spoof the source). The capture rules let it
 *   pass; routing is untouched, so HBONE leaves through eth0 as usual.
 *
 *   ZT_TPROXY_MARK (0x111, Istio's InpodTProxyMark): the transparent
 *   socket with which ztunnel connects to the application from inside the
 *   pod bound to the original client's address (IP_TRANSPARENT), so the
 *   app sees the real peer. The app's replies are addressed to that
 *   foreign client IP and would leave through eth0; instead
 *     - route output `meta mark & 0xfff == 0x111` copies 0x111 into the
 *       connection's ct mark (other ct mark bits kept), and
 *       `ct mark & 0xfff == 0x111` copies the ct mark back into the packet
 *       mark, so the app's replies carry 0x111 too (a route chain: a mark
 *       change there re-routes the packet);
 *     - ip rule `fwmark 0x111/0xfff lookup 133` (priority 32764) with
 *       table 133 holding `local 0.0.0.0/0 dev lo` turns every such packet
 *       into a local delivery over lo, where the transparent socket takes
 *       it (Istio's AddInpodMarkIPRule / AddLoopbackRoutes).
 *   0x539 & 0xfff != 0x111, so ztunnel's outbound HBONE and passthrough
 *   sockets (and their connections' replies) never match that rule.
 *
 * Both are applied inside the pod's namespace by moving the calling thread
 * there for the call (zt_netns_run); nothing touches the host namespace.
 * Threading: any thread (the control thread in the daemon); calls for one
 * namespace must not run concurrently.
 */
#ifndef ZT_CAPTURE_H
#define ZT_CAPTURE_H

#include "zm.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define ZT_TPROXY_MARK 0x111 /* transparent sockets to the app (see above) */
#define ZT_MARK_MASK 0xfff
#define ZT_CAPTURE_TABLE "zmesh-capture" /* nftables table, family ip */
#define ZT_CAPTURE_RT_TABLE 133u         /* routing table: local 0/0 dev lo */
#define ZT_CAPTURE_RULE_PRIO 32764u      /* ip rule priority */
#define ZT_PORT_OUTBOUND 15001
#define ZT_PORT_INBOUND 15006
#define ZT_PORT_HBONE 15008
#define ZT_PROBE_ADDR "169.254.7.127" /* kubelet probes, SNATed by the node */

/* Run fn(arg) with the calling thread inside network namespace nsfd, then
 * return it to host_nsfd (nsfd < 0: run in place). fn's result, -errno if
 * the namespace could not be entered, or -ENOTRECOVERABLE if the thread
 * could not get back (it is then unusable). */
int zt_netns_run(int nsfd, int host_nsfd, int (*fn)(void *), void *arg);

/* An unconnected TCP socket in nsfd (see zt_netns_socket), bound to
 * bind_src when given (port 0: chosen at connect time). transparent sets
 * IP_TRANSPARENT, so bind_src may be a foreign address (the original
 * client's, for source-IP preservation), and marks the socket
 * ZT_TPROXY_MARK instead of ZT_MARK so the app's replies find their way
 * back (capture must be installed). congestion as zt_netns_socket. An fd,
 * or -errno. */
int zt_netns_connect_socket(int nsfd, int host_nsfd, const struct sockaddr_in *bind_src,
                            bool transparent, const char *congestion);

/* Install the capture (nftables table + ip rule + table-133 route) in the
 * namespace nsfd. Idempotent: an existing table is replaced in the same
 * transaction, an existing rule or route is replaced. On failure whatever
 * was installed is removed again. 0, or -errno with err (may be NULL)
 * filled. */
int zt_capture_install(int nsfd, int host_nsfd, zm_err_t *err);

/* Remove all of it; what is missing is skipped. 0, or the first -errno. */
int zt_capture_remove(int nsfd, int host_nsfd);

/* The destination a redirected connection was addressed to (accepted on
 * the 15001 or 15006 listener); for a tracked connection that was not
 * NATed, its own local address. 0, or -errno (-ENOENT: not tracked). */
int zt_original_dst(int fd, struct sockaddr_in *out);

#endif
