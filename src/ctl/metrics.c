/* The metrics endpoint: Prometheus text format (version 0.0.4) at /metrics, served by
 * libmicrohttpd in its external-epoll mode from the mode's loop (ctl.c polls its descriptor),
 * so every figure is read from the engine in the engine's own thread.
 *
 * Names follow Prometheus' conventions: mqoff_ prefix, _total for counters, base units
 * (seconds, bytes). The per-message processing time is a histogram of the time from the
 * moment the mode picked up the bytes that completed a PUBLISH to the moment the engine had
 * decided it and queued its deliveries (the mode's own writes come after).
 */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "core/log.h"

const double mqo_ctl_buckets[CTL_NBUCKETS] = {1e-6,   2.5e-6, 5e-6,   1e-5,   2.5e-5, 5e-5,
                                              1e-4,   2.5e-4, 5e-4,   1e-3,   2.5e-3, 5e-3,
                                              1e-2,   2.5e-2, 5e-2,   1e-1};

void ctl_observe(void *ud, uint64_t input_ns, int consumed)
{
    struct mqo_ctl *c = ud;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t d = now > input_ns ? now - input_ns : 0;
    struct ctl_hist *h = &c->hist[consumed ? 1 : 0];
    int i = 0;
    while (i < CTL_NBUCKETS && (double)d > mqo_ctl_buckets[i] * 1e9)
        i++;
    h->b[i]++;
    h->count++;
    h->sum_ns += d;
}

#define C(n, v, h) out[k++] = (struct mqo_ctl_counter){.name = n, .value = (v), .help = h}
#define CL(n, l, v, h)                                                                            \
    out[k++] = (struct mqo_ctl_counter){.name = n, .labels = l, .value = (v), .help = h}
#define G(n, v, h)                                                                                \
    out[k++] = (struct mqo_ctl_counter){.name = n, .value = (v), .help = h, .gauge = 1}
#define GL(n, l, v, h)                                                                            \
    out[k++] = (struct mqo_ctl_counter){.name = n, .labels = l, .value = (v), .help = h, .gauge = 1}

static char reason_labels[MQO_PT__COUNT][48];

size_t ctl_engine_counters(const struct mqo_ctl *c, struct mqo_ctl_counter *out, size_t cap)
{
    const struct mqo_engine_stats *s = mqo_engine_stats(c->e);
    struct mqo_ctl_counter tmp[128];
    if (cap < 128)
        out = tmp; /* counts only */
    size_t k = 0;
    C("mqoff_publishes_received_total", s->publish_in, "PUBLISH packets from clients");
    C("mqoff_publishes_offloaded_total", s->consumed,
      "PUBLISH packets the offload delivered itself");
    for (int r = 1; r < MQO_PT__COUNT; r++) {
        if (!reason_labels[r][0])
            snprintf(reason_labels[r], sizeof reason_labels[r], "reason=\"%s\"",
                     mqo_pt_reason_name((enum mqo_pt_reason)r));
        CL("mqoff_publishes_passed_through_total", reason_labels[r], s->pt_reason[r],
           "PUBLISH packets passed to the broker, by the first reason found");
    }
    CL("mqoff_deliveries_total", "qos=\"0\"", s->deliveries - s->deliveries_qos1,
       "PUBLISH packets the offload wrote to subscribers");
    CL("mqoff_deliveries_total", "qos=\"1\"", s->deliveries_qos1,
       "PUBLISH packets the offload wrote to subscribers");
    C("mqoff_deliveries_dropped_total", s->dropped_qos0,
      "QoS 0 deliveries dropped for a subscriber's full output queue");
    C("mqoff_pubacks_sent_total", s->pubacks_sent, "PUBACKs sent to publishers for the broker");
    C("mqoff_subscriber_pubacks_absorbed_total", s->pubacks_absorbed,
      "subscribers' PUBACKs of the offload's own deliveries");
    C("mqoff_packet_ids_remapped_total", s->pids_remapped,
      "broker packet identifiers rewritten toward a client");
    C("mqoff_pings_synthesized_total", s->pings_synth,
      "PINGREQs sent to the broker for clients (keep-alive, ordering barriers)");
    C("mqoff_order_holds_expired_total", s->order_expired,
      "ordering holds given up after the hold time");
    C("mqoff_inflight_lost_total", s->inflight_lost,
      "offload QoS 1 deliveries unacknowledged when their connection closed");
    C("mqoff_protocol_errors_total", s->protocol_errors,
      "packets passed to the broker unjudged");
    C("mqoff_streamed_packets_total", s->streamed, "packets larger than max_buffer, streamed");
    C("mqoff_receive_maximum_holds_total", s->s2c_holds,
      "broker PUBLISHes held for a Receive Maximum slot");
    G("mqoff_connections", s->conns_open, "client connections");
    G("mqoff_relayed_connections", s->relay_conns, "connections relayed unedited");
    G("mqoff_unknown_connections", s->unknown_conns,
      "connections whose subscriptions may be unknown");
    GL("mqoff_subscriptions", "origin=\"stream\"", s->subscriptions,
       "subscriptions in the table, learned from the streams or reported by the broker");
    GL("mqoff_subscriptions", "origin=\"broker\"", s->bv_table,
       "subscriptions in the table, learned from the streams or reported by the broker");
    G("mqoff_blind_sessions", s->blind_sessions,
      "resumed sessions whose subscriptions are unknown");
    G("mqoff_unseen_clients", s->unseen_clients, "connections the mode cannot see");
    G("mqoff_broker_config_hold", s->conf_hold,
      "1 while the broker's configuration stops all offload");
    G("mqoff_plugin_connected", c->plugin != NULL, "1 while the broker plugin is connected");
    G("mqoff_broker_view_synced", s->bv_state == 2,
      "1 while the broker's view is synced (used instead of the gates)");
    C("mqoff_broker_view_syncs_total", s->bv_syncs, "times the broker's view became synced");
    C("mqoff_plugin_disconnects_total", c->plugin_losses, "broker plugin connections lost");
    G("mqoff_broker_view_sessions", s->bv_sessions, "sessions the broker reports");
    G("mqoff_broker_view_subscriptions", s->bv_subscriptions, "subscriptions the broker reports");
    G("mqoff_broker_view_bound_connections", s->bv_bound,
      "connections bound to the broker's own");
    C("mqoff_bind_markers_total", s->bv_markers, "bind markers sent to the broker");
    C("mqoff_broker_reloads_total", c->broker_reloads,
      "configuration reloads the broker plugin reported (each acts as a SIGHUP to mqoff)");
    G("mqoff_acl_versions", s->acl_versions,
      "acl_file versions the broker may be using (with an acl_file, 0: none parses, all passes)");
    C("mqoff_control_requests_total", c->requests, "mqoffctl requests served");
    return k;
}

/* Appends the lines of one family (HELP, TYPE once per name). */
static void put_counters(FILE *f, const struct mqo_ctl_counter *v, size_t n, const char **last)
{
    for (size_t i = 0; i < n; i++) {
        if (!*last || strcmp(*last, v[i].name) != 0) {
            fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", v[i].name, v[i].help ? v[i].help : "",
                    v[i].name, v[i].gauge ? "gauge" : "counter");
            *last = v[i].name;
        }
        if (v[i].labels)
            fprintf(f, "%s{%s} %llu\n", v[i].name, v[i].labels, (unsigned long long)v[i].value);
        else
            fprintf(f, "%s %llu\n", v[i].name, (unsigned long long)v[i].value);
    }
}

char *mqo_ctl_metrics_page(struct mqo_ctl *c)
{
    char *page = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&page, &len);
    if (!f)
        return NULL;
    struct mqo_ctl_counter ec[128];
    size_t ne = ctl_engine_counters(c, ec, 128);
    const char *last = NULL;
    put_counters(f, ec, ne, &last);
    size_t nm = ctl_mode_counters(c);
    put_counters(f, c->ctrs, nm, &last);
    static const char *const res[2] = {"passed_through", "offloaded"};
    const char *hn = "mqoff_publish_processing_seconds";
    fprintf(f, "# HELP %s time from the bytes completing a PUBLISH to its decision and fan-out\n"
               "# TYPE %s histogram\n", hn, hn);
    for (int r = 0; r < 2; r++) {
        const struct ctl_hist *h = &c->hist[r];
        uint64_t cum = 0;
        for (int i = 0; i < CTL_NBUCKETS; i++) {
            cum += h->b[i];
            fprintf(f, "%s_bucket{result=\"%s\",le=\"%g\"} %llu\n", hn, res[r],
                    mqo_ctl_buckets[i], (unsigned long long)cum);
        }
        fprintf(f, "%s_bucket{result=\"%s\",le=\"+Inf\"} %llu\n", hn, res[r],
                (unsigned long long)h->count);
        fprintf(f, "%s_sum{result=\"%s\"} %.9f\n", hn, res[r], (double)h->sum_ns / 1e9);
        fprintf(f, "%s_count{result=\"%s\"} %llu\n", hn, res[r], (unsigned long long)h->count);
    }
    if (fclose(f) != 0) {
        free(page);
        return NULL;
    }
    return page;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct mqo_ctl *c = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return MHD_NO;
    int status = MHD_HTTP_OK;
    char *page = NULL;
    const char *type = "text/plain; version=0.0.4; charset=utf-8";
    if (!strcmp(url, "/metrics")) {
        c->scrapes++;
        page = mqo_ctl_metrics_page(c);
    } else if (!strcmp(url, "/")) {
        page = strdup("mqoff: metrics at /metrics\n");
        type = "text/plain; charset=utf-8";
    } else {
        page = strdup("not found\n");
        status = MHD_HTTP_NOT_FOUND;
        type = "text/plain; charset=utf-8";
    }
    if (!page)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(page), page, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(page);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

int ctl_metrics_open(struct mqo_ctl *c)
{
    const char *s = c->cfg.metrics;
    char host[256];
    const char *colon = strrchr(s, ':');
    const char *h = s, *he = colon;
    if (s[0] == '[') {
        h = s + 1;
        he = strchr(s, ']');
        if (!he || he[1] != ':')
            colon = NULL;
    }
    if (!colon || !colon[1] || (size_t)(he - h) >= sizeof host) {
        mqo_err("--metrics %s: expected ADDR:PORT", s);
        return -EINVAL;
    }
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (g) {
        mqo_err("--metrics %s: %s", s, gai_strerror(g));
        return -EINVAL;
    }
    unsigned flags = MHD_USE_EPOLL | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    uint16_t port = (uint16_t)atoi(colon + 1);
    c->mhd = MHD_start_daemon(flags, port, NULL, NULL, on_request, c, MHD_OPTION_SOCK_ADDR,
                              ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!c->mhd) {
        mqo_err("--metrics %s: cannot serve there (address in use, or not local)", s);
        return -EADDRNOTAVAIL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(c->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    c->mhd_fd = di ? di->epoll_fd : -1;
    if (c->mhd_fd >= 0) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->mhd_fd};
        epoll_ctl(c->ep, EPOLL_CTL_ADD, c->mhd_fd, &e);
    }
    mqo_info("metrics at http://%s/metrics (Prometheus text format)", s);
    return 0;
}

void ctl_metrics_run(struct mqo_ctl *c)
{
    if (c->mhd)
        MHD_run(c->mhd); /* non-blocking in this mode: serves what is ready, times out idlers */
}

void ctl_metrics_close(struct mqo_ctl *c)
{
    if (c->mhd) {
        if (c->mhd_fd >= 0)
            epoll_ctl(c->ep, EPOLL_CTL_DEL, c->mhd_fd, NULL);
        MHD_stop_daemon(c->mhd);
        c->mhd = NULL;
    }
}
