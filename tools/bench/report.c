/* mqoff-bench output: a human table on stdout and a JSON record (--json FILE). */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

static const char *filter_name(enum mqb_filter f)
{
    return f == MQB_PLUS ? "plus" : f == MQB_HASH ? "hash" : "exact";
}

static const char *mqtt_name(unsigned v) { return v == 5 ? "5" : "3.1.1"; }

double mqb_win_rate(const struct mqb_win *w)
{
    double s = (double)(w->end - w->start) / 1e9;
    return s > 0 ? (double)w->delivered / s : 0;
}

struct totals {
    uint64_t sent, unsent, expected, delivered, dup, reorder;
};

static struct totals totals(const struct mqb *b)
{
    struct totals t = {0};
    for (unsigned i = 0; i < b->nwin; i++) {
        const struct mqb_win *w = &b->win[i];
        t.sent += w->sent;
        t.unsent += w->unsent;
        t.expected += w->expected;
        t.delivered += w->delivered;
        t.dup += w->dup;
        t.reorder += w->reorder;
    }
    return t;
}

static void hist_row(FILE *f, const char *name, const struct mqo_hist *h)
{
    if (!h->count) {
        fprintf(f, "  %-20s %9s\n", name, "-");
        return;
    }
    fprintf(f, "  %-20s %9llu %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", name, (unsigned long long)h->count,
            mqo_hist_percentile(h, 50) / 1e3, mqo_hist_percentile(h, 90) / 1e3,
            mqo_hist_percentile(h, 99) / 1e3, mqo_hist_percentile(h, 99.9) / 1e3,
            (double)h->max / 1e3, mqo_hist_mean(h) / 1e3);
}

static void config_line(const struct mqb *b, FILE *f)
{
    const struct mqb_cfg *c = &b->cfg;
    fprintf(f, "config   MQTT %s QoS %u | %u pub -> %s:%u, %u sub -> %s:%u | %u topic%s, filter %s",
            mqtt_name(c->mqtt), c->qos, c->pubs, c->host, c->port, c->subs, c->sub_host, c->sub_port,
            c->topics, c->topics == 1 ? "" : "s", filter_name(c->filter));
    if (c->filter == MQB_EXACT && c->subs % c->topics == 0)
        fprintf(f, " (%u subscribers per message)", c->subs / c->topics);
    else if (c->filter == MQB_EXACT)
        fprintf(f, " (%u-%u subscribers per message)", c->subs / c->topics, c->subs / c->topics + 1);
    else
        fprintf(f, " (every subscriber gets every message)");
    if (c->decoys)
        fprintf(f, " + %u decoy filters per subscriber (%llu filters)", c->decoys,
                (unsigned long long)c->subs * (1ull + c->decoys));
    fprintf(f, " | %u B payload\n", c->size);
}

static void checks_line(const struct mqb *b, FILE *f)
{
    struct totals t = totals(b);
    fprintf(f,
            "checks   lost %llu  dup %llu  reorder %llu  unsent %llu  misrouted %llu  unexpected %llu"
            "  stray %llu  bad payload %llu  disconnects %llu  protocol errors %llu  (whole run)\n",
            (unsigned long long)(t.expected - t.delivered), (unsigned long long)t.dup,
            (unsigned long long)t.reorder, (unsigned long long)t.unsent, (unsigned long long)b->misrouted,
            (unsigned long long)b->unexpected, (unsigned long long)b->stray,
            (unsigned long long)b->bad_payload, (unsigned long long)b->disconnects,
            (unsigned long long)b->proto_errors);
    if (b->cfg.qos)
        fprintf(f, "QoS 1    PUBACKs %llu of %llu sent, %llu failed or unknown\n", (unsigned long long)b->pubacks,
                (unsigned long long)b->qos1_sent, (unsigned long long)b->bad_pubacks);
    for (int k = 0; k < MQB_TAPS; k++)
        if (b->cfg.tap_if[k])
            fprintf(f, "%-8s %s: %llu frames, %llu stream gaps, %llu kernel drops, %llu PUBLISH not from this run\n",
                    k == MQB_TAP_CLIENT ? "tap" : "sndtap", b->cfg.tap_if[k], (unsigned long long)b->wire[k].frames,
                    (unsigned long long)b->wire[k].gaps, (unsigned long long)b->wire[k].drops,
                    (unsigned long long)b->wire[k].unmatched);
}

static void window_table(const struct mqb *b, const struct mqb_win *w, FILE *f)
{
    fprintf(f, "  %-20s %9s %9s %9s %9s %9s %9s %9s\n", "latency (us)", "count", "p50", "p90", "p99",
            "p99.9", "max", "mean");
    hist_row(f, "first subscriber", &w->first);
    hist_row(f, "last subscriber", &w->last);
    hist_row(f, "per delivery", &w->delivery);
    if (b->cfg.tap_if[MQB_TAP_CLIENT])
        hist_row(f, "wire: last (tap)", &w->tap_last[MQB_TAP_CLIENT]);
    if (b->cfg.tap_if[MQB_TAP_SENDER])
        hist_row(f, "wire: last sent", &w->tap_last[MQB_TAP_SENDER]);
    hist_row(f, "bench send lag", &w->send_lag);
}

void mqb_report_run(const struct mqb *b, FILE *f)
{
    const struct mqb_cfg *c = &b->cfg;
    fprintf(f, "mqoff-bench %s  [%s]\n", MQB_VERSION, c->label);
    config_line(b, f);
    for (unsigned i = 0; i < b->nwin; i++) {
        const struct mqb_win *w = &b->win[i];
        if (!w->measured)
            continue;
        double secs = (double)(w->end - w->start) / 1e9;
        fprintf(f, "load     %g msg/s per publisher, %g msg/s offered; warmup %g s, measured %g s\n", w->rate,
                w->rate * c->pubs, c->warmup, secs);
        fprintf(f,
                "measured %llu messages sent (%llu complete), %llu deliveries of %llu expected, "
                "%.0f deliveries/s, lost %llu\n",
                (unsigned long long)w->sent, (unsigned long long)w->complete, (unsigned long long)w->delivered,
                (unsigned long long)w->expected, mqb_win_rate(w),
                (unsigned long long)(w->expected - w->delivered));
        checks_line(b, f);
        fprintf(f, "\n");
        window_table(b, w, f);
    }
}

void mqb_report_steps(const struct mqb *b, FILE *f, int best, double bound_ns)
{
    const struct mqb_cfg *c = &b->cfg;
    fprintf(f, "mqoff-bench %s  [%s]  saturation sweep\n", MQB_VERSION, c->label);
    config_line(b, f);
    fprintf(f, "bound    p99 last-subscriber latency <= %.1f us, nothing lost or unsent\n\n", bound_ns / 1e3);
    fprintf(f, "  %4s %12s %12s %13s %10s %10s %10s %8s %8s  %s\n", "step", "msg/s/pub", "offered/s",
            "deliveries/s", "last p50", "last p99", "last max", "lost", "unsent", "");
    for (unsigned i = 0; i < b->nwin; i++) {
        const struct mqb_win *w = &b->win[i];
        if (!w->measured)
            continue;
        const char *verdict = (int)i == best ? "<- best" : w->verdict == 0 ? "over" : "";
        fprintf(f, "  %4d %12.1f %12.1f %13.0f %10.1f %10.1f %10.1f %8llu %8llu  %s\n", w->step, w->rate,
                w->rate * c->pubs, mqb_win_rate(w), mqo_hist_percentile(&w->last, 50) / 1e3,
                mqo_hist_percentile(&w->last, 99) / 1e3, (double)w->last.max / 1e3,
                (unsigned long long)(w->expected - w->delivered), (unsigned long long)w->unsent, verdict);
    }
    fprintf(f, "\n");
    if (best >= 0)
        fprintf(f, "result   %.0f deliveries/s sustained (step %d, %g msg/s per publisher)\n",
                mqb_win_rate(&b->win[best]), b->win[best].step, b->win[best].rate);
    else
        fprintf(f, "result   no step met the bound\n");
    if (b->sweep_end)
        fprintf(f, "stopped  %s\n", b->sweep_end);
    checks_line(b, f);
    if (best >= 0) {
        fprintf(f, "\nbest step:\n");
        window_table(b, &b->win[best], f);
    }
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_hist(FILE *f, const char *name, const struct mqo_hist *h, int last)
{
    fprintf(f, "        \"%s\": {\"count\": %llu", name, (unsigned long long)h->count);
    if (h->count)
        fprintf(f,
                ", \"min\": %llu, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"p99_9\": %llu, "
                "\"max\": %llu, \"mean\": %.0f",
                (unsigned long long)h->min, (unsigned long long)mqo_hist_percentile(h, 50),
                (unsigned long long)mqo_hist_percentile(h, 90), (unsigned long long)mqo_hist_percentile(h, 99),
                (unsigned long long)mqo_hist_percentile(h, 99.9), (unsigned long long)h->max, mqo_hist_mean(h));
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void json_window(const struct mqb *b, FILE *f, const struct mqb_win *w, int last)
{
    fprintf(f,
            "    {\"step\": %d, \"rate_per_pub\": %.3f, \"offered_msgs_per_s\": %.3f, \"duration_s\": %.3f,\n"
            "     \"sent\": %llu, \"unsent\": %llu, \"complete\": %llu, \"expected\": %llu, \"delivered\": %llu,\n"
            "     \"deliveries_per_s\": %.1f, \"lost\": %llu, \"dup\": %llu, \"reorder\": %llu, \"met_bound\": %s,\n"
            "     \"latency_ns\": {\n",
            w->step, w->rate, w->rate * b->cfg.pubs, (double)(w->end - w->start) / 1e9,
            (unsigned long long)w->sent, (unsigned long long)w->unsent, (unsigned long long)w->complete,
            (unsigned long long)w->expected, (unsigned long long)w->delivered, mqb_win_rate(w),
            (unsigned long long)(w->expected - w->delivered), (unsigned long long)w->dup,
            (unsigned long long)w->reorder, w->verdict < 0 ? "null" : w->verdict ? "true" : "false");
    json_hist(f, "first_subscriber", &w->first, 0);
    json_hist(f, "last_subscriber", &w->last, 0);
    json_hist(f, "per_delivery", &w->delivery, 0);
    if (b->cfg.tap_if[MQB_TAP_CLIENT])
        json_hist(f, "wire_last_subscriber", &w->tap_last[MQB_TAP_CLIENT], 0);
    if (b->cfg.tap_if[MQB_TAP_SENDER])
        json_hist(f, "wire_sent_last_subscriber", &w->tap_last[MQB_TAP_SENDER], 0);
    json_hist(f, "send_lag", &w->send_lag, 1);
    fprintf(f, "     }}%s\n", last ? "" : ",");
}

/* A time of message (sched) as microseconds after its scheduled time; "" when never seen. */
static void trace_us(FILE *f, uint64_t t, uint64_t sched)
{
    if (t)
        fprintf(f, ",%.1f", ((double)t - (double)sched) / 1e3);
    else
        fputs(",", f);
}

int mqb_report_trace(const struct mqb *b, FILE *f)
{
    const struct mqb_cfg *c = &b->cfg;
    uint64_t t0 = 0;
    for (unsigned i = 0; i < b->nwin; i++)
        if (b->win[i].measured && (!t0 || b->win[i].start < t0))
            t0 = b->win[i].start;
    fputs("# mqoff-bench --trace: one measured message a line; sched_ms from the first measured\n"
          "# window's start, the rest microseconds after the message's scheduled time (empty: not seen)\n"
          "pub,seq,sched_ms,queued_us,wire_start_us,wire_last_us,sent_wire_last_us,first_us,last_us\n",
          f);
    for (unsigned j = 0; j < c->pubs; j++) {
        const struct mqb_pub *p = &b->pubs[j];
        for (uint64_t q = 0; q < p->seq && q < p->cap && p->tr_sent; q++) {
            if (!b->win[p->mwin[q]].measured)
                continue;
            uint64_t sched = p->tr_sched[q];
            fprintf(f, "%u,%llu,%.3f", j, (unsigned long long)q, ((double)sched - (double)t0) / 1e6);
            trace_us(f, p->tr_sent[q], sched);
            for (int k = 0; k < MQB_TAPS; k++) {
                const uint64_t *a = p->tapd[k].t0, *z = p->tapd[k].tmax;
                uint64_t s0 = a && a[q] ? (uint64_t)((int64_t)a[q] - b->rt_off) : 0;
                uint64_t s1 = z && z[q] ? (uint64_t)((int64_t)z[q] - b->rt_off) : 0;
                if (k == MQB_TAP_CLIENT)
                    trace_us(f, s0, sched);
                trace_us(f, s1, sched);
            }
            trace_us(f, p->tr_first[q], sched);
            trace_us(f, p->tr_last[q], sched);
            fputc('\n', f);
        }
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "mqoff-bench: --trace %s: write error\n", c->trace);
        return -1;
    }
    return 0;
}

int mqb_report_json(const struct mqb *b, const char *path, int best, double bound_ns)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "mqoff-bench: --json %s: %s\n", path, strerror(errno));
        return -1;
    }
    const struct mqb_cfg *c = &b->cfg;
    struct utsname u;
    char kernel[200] = "unknown";
    if (uname(&u) == 0)
        snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname, u.release, u.machine);
    char when[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct totals t = totals(b);

    fprintf(f, "{\n  \"tool\": \"mqoff-bench\",\n  \"version\": \"%s\",\n  \"stamp_version\": %d,\n", MQB_VERSION,
            MQO_STAMP_VERSION);
    fprintf(f, "  \"kernel\": ");
    json_str(f, kernel);
    fprintf(f, ",\n  \"time_utc\": \"%s\",\n  \"label\": ", when);
    json_str(f, c->label);
    fprintf(f, ",\n  \"run_id\": %u,\n  \"config\": {\n    \"pub_host\": ", b->run);
    json_str(f, c->host);
    fprintf(f, ", \"pub_port\": %u, \"sub_host\": ", c->port);
    json_str(f, c->sub_host);
    fprintf(f, ", \"sub_port\": %u, \"bind\": ", c->sub_port);
    json_str(f, c->bind);
    fprintf(f,
            ",\n    \"mqtt\": \"%s\", \"qos\": %u, \"pubs\": %u, \"subs\": %u, \"topics\": %u, \"filter\": \"%s\",\n"
            "    \"decoys_per_sub\": %u, \"filters\": %llu,\n"
            "    \"rate_per_pub\": %.3f, \"size\": %u, \"warmup_s\": %.3f, \"duration_s\": %.3f, \"grace_s\": %.3f,\n"
            "    \"keepalive_s\": %u, \"seed\": %llu, \"prefix\": ",
            mqtt_name(c->mqtt), c->qos, c->pubs, c->subs, c->topics, filter_name(c->filter), c->decoys,
            (unsigned long long)c->subs * (1ull + c->decoys), c->rate, c->size,
            c->warmup, c->duration, c->grace, c->keepalive, (unsigned long long)c->seed);
    json_str(f, c->prefix);
    fprintf(f, ", \"tap\": ");
    json_str(f, c->tap_if[MQB_TAP_CLIENT]);
    fprintf(f, ", \"sender_tap\": ");
    json_str(f, c->tap_if[MQB_TAP_SENDER]);
    fprintf(f, ",\n    \"saturation\": %s", c->saturation ? "true" : "false");
    if (c->saturation)
        fprintf(f, ", \"step_s\": %.3f, \"step_warmup_s\": %.3f, \"step_factor\": %.3f, \"max_steps\": %u",
                c->step, c->step_warmup, c->step_factor, c->max_steps);
    fprintf(f, "\n  },\n");
    fprintf(f,
            "  \"totals\": {\"sent\": %llu, \"unsent\": %llu, \"expected\": %llu, \"delivered\": %llu, \"lost\": %llu,\n"
            "    \"dup\": %llu, \"reorder\": %llu, \"misrouted\": %llu, \"unexpected\": %llu, \"stray\": %llu,\n"
            "    \"bad_payload\": %llu, \"disconnects\": %llu, \"protocol_errors\": %llu,\n"
            "    \"qos1_sent\": %llu, \"pubacks\": %llu, \"pubacks_failed\": %llu",
            (unsigned long long)t.sent, (unsigned long long)t.unsent, (unsigned long long)t.expected,
            (unsigned long long)t.delivered, (unsigned long long)(t.expected - t.delivered),
            (unsigned long long)t.dup, (unsigned long long)t.reorder, (unsigned long long)b->misrouted,
            (unsigned long long)b->unexpected, (unsigned long long)b->stray, (unsigned long long)b->bad_payload,
            (unsigned long long)b->disconnects, (unsigned long long)b->proto_errors,
            (unsigned long long)b->qos1_sent, (unsigned long long)b->pubacks, (unsigned long long)b->bad_pubacks);
    for (int k = 0; k < MQB_TAPS; k++)
        if (b->cfg.tap_if[k])
            fprintf(f, ",\n    \"%stap_frames\": %llu, \"%stap_gaps\": %llu, \"%stap_drops\": %llu, \"%stap_unmatched\": %llu",
                    k ? "sender_" : "", (unsigned long long)b->wire[k].frames, k ? "sender_" : "",
                    (unsigned long long)b->wire[k].gaps, k ? "sender_" : "", (unsigned long long)b->wire[k].drops,
                    k ? "sender_" : "", (unsigned long long)b->wire[k].unmatched);
    fprintf(f, "},\n");
    if (c->saturation) {
        fprintf(f, "  \"saturation\": {\"p99_bound_ns\": %.0f, \"best_step\": %d, \"best_deliveries_per_s\": %.1f, \"stopped\": ",
                bound_ns, best >= 0 ? b->win[best].step : -1, best >= 0 ? mqb_win_rate(&b->win[best]) : 0.0);
        json_str(f, b->sweep_end);
        fprintf(f, "},\n");
    }
    fprintf(f, "  \"windows\": [\n");
    unsigned n = 0, k = 0;
    for (unsigned i = 0; i < b->nwin; i++)
        n += b->win[i].measured ? 1 : 0;
    for (unsigned i = 0; i < b->nwin; i++)
        if (b->win[i].measured)
            json_window(b, f, &b->win[i], ++k == n);
    fprintf(f, "  ]\n}\n");
    if (fclose(f)) {
        fprintf(stderr, "mqoff-bench: --json %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}
