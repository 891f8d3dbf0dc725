/* The PUBLISH decision (consume or pass through), the fan-out, and the ordering holds.
 *
 * Ordering. A publisher P's message m1 that goes through the broker can still be inside the
 * broker when P's next message m2 arrives. If the offload delivered m2 at once, a subscriber
 * could see m2 before m1. So when m1 is passed through, the engine notes, on every connection
 * the broker will deliver m1 to, an expectation (publisher, hash of topic and payload), and
 * counts it on P. While P has expectations outstanding (or passed-through QoS>0 messages the
 * broker has not acknowledged, so PUBACKs stay in order), P's messages go to the broker too.
 * An expectation is met when a PUBLISH with that topic and payload appears in the
 * subscriber's broker->client stream. Such a PUBLISH from another publisher with equal topic
 * and payload may meet it instead; the subscriber then cannot tell the two orders apart, as
 * the copies are identical and no order between two publishers is promised. Expectations the
 * broker never meets (it dropped a QoS 0 message for a full queue, say) are given up after
 * cfg.order_hold_ms and counted in order_expired.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "core/log.h"
#include "engine/engine_int.h"

uint64_t order_hash_begin(struct mqo_str topic)
{
    uint64_t h = mqo_hash64(topic.p, topic.len, 0x70b1c);
    return mqo_hash64_begin(h);
}

uint64_t order_hash_update(uint64_t st, const uint8_t *p, size_t n)
{
    return mqo_hash64_update(st, p, n);
}

uint64_t order_hash_end(uint64_t st) { return mqo_hash64_end(st); }

static uint64_t msg_hash(struct mqo_str topic, const uint8_t *payload, uint32_t plen)
{
    return order_hash_end(order_hash_update(order_hash_begin(topic), payload, plen));
}

/* ACL check for connection c over every version the broker may use (authz.c): 1 allowed,
 * 0 denied, -1 cannot be evaluated, 2 the versions disagree. */
static int acl_ok(struct mqo_engine *e, const struct mqo_conn *c, struct mqo_str t, int access)
{
    return eng_acl_check(e, c, t, access);
}

static int plan_reserve(struct mqo_engine *e, size_t n)
{
    if (n <= e->cap_plan)
        return 0;
    size_t cap = e->cap_plan ? e->cap_plan : 64;
    while (cap < n)
        cap *= 2;
    struct plan_ent *p = realloc(e->plan, cap * sizeof *p);
    if (!p)
        return -ENOMEM;
    e->plan = p;
    e->cap_plan = cap;
    return 0;
}

/* What every delivery of this message shares. */
struct pubctx {
    struct mqo_str topic;     /* in the broker's terms (mount point + the client's topic) */
    struct mqo_str raw_topic; /* as the client means it (the alias resolved) */
    uint8_t topic_stack[256];
    uint8_t *topic_heap;
    const struct mqo_pkt *pk;
    uint8_t *props; /* v5 properties to deliver (publisher's, without Topic Alias) */
    uint32_t props_len;
    uint8_t props_stack[517];
};

/* The properties a delivery carries, as Mosquitto 2.0.11 sends them: handle__publish keeps
 * Content Type, Correlation Data, Payload Format Indicator, Response Topic and User Properties
 * in their order (Topic Alias and Subscription Identifier are not delivered), and
 * send__real_publish writes those after the subscriber's Subscription Identifiers (the
 * encoder's order) and the Message Expiry Interval, when not 0, last (the remaining interval:
 * all of it, as the offload delivers at once). raw[0..len) is a validated block; out has room
 * for len + 5 bytes. Returns the bytes written. */
static uint32_t delivered_props(const uint8_t *raw, uint32_t len, uint8_t *out)
{
    uint32_t off = 0, n = 0, expiry = 0;
    struct mqo_prop pr;
    while (mqo_props_next(raw, len, &off, &pr) == 1) {
        switch (pr.id) {
        case MQO_PROP_MESSAGE_EXPIRY:
            expiry = pr.u;
            break;
        case MQO_PROP_TOPIC_ALIAS:
        case MQO_PROP_SUBSCRIPTION_ID:
            break;
        default:
            memcpy(out + n, raw + pr.off, pr.len);
            n += pr.len;
            break;
        }
    }
    if (expiry) {
        out[n++] = MQO_PROP_MESSAGE_EXPIRY;
        out[n++] = (uint8_t)(expiry >> 24);
        out[n++] = (uint8_t)(expiry >> 16);
        out[n++] = (uint8_t)(expiry >> 8);
        out[n++] = (uint8_t)expiry;
    }
    return n;
}

static void spec_for(const struct pubctx *x, uint8_t version, uint8_t qos, const uint32_t *ids,
                     uint32_t n_ids, struct mqo_pub_spec *sp)
{
    *sp = (struct mqo_pub_spec){
        .version = version,
        .qos = qos,
        .pid = qos ? 1 : 0,
        .topic = x->topic,
        .payload = x->pk->u.publish.payload,
        .payload_len = x->pk->u.publish.payload_len,
    };
    if (version == MQO_MQTT_V5) {
        sp->props = x->props;
        sp->props_len = x->props_len;
        sp->sub_ids = ids;
        sp->n_sub_ids = n_ids;
    }
}

size_t mqo_engine_holds(const struct mqo_engine *e, enum mqo_pt_reason *out, size_t cap)
{
    int bv = eng_bv_synced(e);
    const struct {
        int on;
        enum mqo_pt_reason r;
    } g[] = {
        {e->cfg.acl_mode == MQO_ACL_NONE, MQO_PT_NO_ACL},
        {!e->cfg.exclusive && !bv, MQO_PT_NOT_EXCLUSIVE},
        {e->st.conf_hold != 0, MQO_PT_BROKER_CONF},
        {e->acl_broken, MQO_PT_ACL_BROKEN},
        {e->st.blind_sessions && !bv, MQO_PT_BLIND},
        {e->st.unseen_clients && !bv, MQO_PT_UNSEEN},
        {e->st.unknown_conns && !bv, MQO_PT_UNKNOWN_CONN},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (g[i].on) {
            if (n < cap)
                out[n] = g[i].r;
            n++;
        }
    return n;
}

/* The subscriber of match i's delivery. */
static struct mqo_conn *plan_conn(const struct mqo_engine *e, size_t i)
{
    return ((const struct session *)e->ms.v[i].owner)->conn;
}

/* Decides whether c's PUBLISH can be consumed; fills e->plan[0..*np) (*np: the matches).
 * Returns MQO_PT_NONE or the reason to pass it through. *matched tells whether e->ms holds
 * the match set. */
static enum mqo_pt_reason decide(struct mqo_engine *e, struct mqo_conn *c,
                                 const struct pubctx *x, size_t pkt_len, size_t *np,
                                 int *matched)
{
    const struct mqo_pkt *pk = x->pk;
    uint8_t qos = pk->u.publish.qos;
    *np = 0;
    *matched = 0;
    if (e->cfg.acl_mode == MQO_ACL_NONE)
        return MQO_PT_NO_ACL;
    /* the broker's view, while synced, reports every client the engine cannot see */
    int bv = eng_bv_synced(e);
    if (!e->cfg.exclusive && !bv)
        return MQO_PT_NOT_EXCLUSIVE;
    if (e->st.conf_hold)
        return MQO_PT_BROKER_CONF;
    if (e->acl_broken)
        return MQO_PT_ACL_BROKEN;
    if (c->relay)
        return MQO_PT_RELAY;
    if (!c->live || !c->sess)
        return MQO_PT_NOT_LIVE;
    if (e->st.blind_sessions && !bv)
        return MQO_PT_BLIND;
    if (e->st.unseen_clients && !bv)
        return MQO_PT_UNSEEN;
    if (e->st.unknown_conns && !bv)
        return MQO_PT_UNKNOWN_CONN;
    if (qos > 1 || qos > c->broker_max_qos || (e->cfg.max_qos && qos > e->cfg.max_qos))
        return MQO_PT_QOS2;
    if (pk->u.publish.retain)
        return MQO_PT_RETAIN;
    if (pk->u.publish.dup)
        return MQO_PT_DUP;
    if (x->raw_topic.len == 0)
        return MQO_PT_ALIAS;
    if (x->raw_topic.p[0] == '$')
        return MQO_PT_DOLLAR;
    if (!x->topic.len)
        return MQO_PT_BROKER_LIMIT; /* longer than a topic can be under the mount point */
    if (e->cfg.message_size_limit && pk->u.publish.payload_len > e->cfg.message_size_limit)
        return MQO_PT_BROKER_LIMIT; /* the broker refuses it (v5: PUBACK 0x95) */
    if (e->cfg.broker_max_packet && pkt_len > e->cfg.broker_max_packet)
        return MQO_PT_BROKER_LIMIT; /* the broker drops the client */
    if (c->version == MQO_MQTT_V5) {
        /* a PUBLISH that sets an alias must reach the broker, which keeps the mapping */
        if (MQO_PROP_HAS(&pk->props, MQO_PROP_TOPIC_ALIAS) && pk->u.publish.topic.len)
            return MQO_PT_ALIAS;
        if (MQO_PROP_HAS(&pk->props, MQO_PROP_PAYLOAD_FORMAT) && pk->props.payload_format)
            return MQO_PT_PAYLOAD_FORMAT;
    }
    if (c->broker_max_packet && pkt_len > c->broker_max_packet)
        return MQO_PT_SIZE;
    if (qos && !eng_at_boundary(c, MQO_S2C))
        return MQO_PT_STREAMING; /* its PUBACK cannot go in the middle of a packet */
    if (c->order_pending)
        return MQO_PT_ORDER;
    int w = acl_ok(e, c, x->topic, MQO_ACL_WRITE);
    if (w < 0)
        return MQO_PT_ACL_UNKNOWN;
    if (w == 0)
        return MQO_PT_WRITE_DENIED;
    if (w == ENG_ACL_SPLIT)
        return MQO_PT_ACL_CHANGED;
    struct mqo_match_set *ms = &e->ms;
    if (mqo_trie_count(e->broker_only)) {
        if (mqo_trie_match(e->broker_only, x->raw_topic.p, x->raw_topic.len, NULL, ms) != 0)
            return MQO_PT_BROKER_ONLY;
    }
    int nm = mqo_trie_match(e->trie, x->topic.p, x->topic.len, c->sess, ms);
    if (nm < 0)
        return MQO_PT_NOMEM;
    *matched = 1;
    if (plan_reserve(e, (size_t)nm))
        return MQO_PT_NOMEM;
    for (size_t i = 0; i < ms->n; i++) {
        const struct mqo_match *m = &ms->v[i];
        struct plan_ent *pe = &e->plan[i];
        *pe = (struct plan_ent){0};
        struct session *s = m->owner;
        if (m->flags & MQO_SUB_SHARED)
            return MQO_PT_SHARED;
        if (m->flags & MQO_SUB_HELD)
            return MQO_PT_HELD;
        if (s->foreign)
            return MQO_PT_FOREIGN;
        if (m->flags & SUBF_PENDING)
            return MQO_PT_PENDING_SUB;
        if (m->n_subs > 1 && e->cfg.overlap == MQO_OVERLAP_PASSTHROUGH)
            return MQO_PT_OVERLAP;
        struct mqo_conn *sc = s->conn;
        if (!sc || !sc->live || sc->sess != s)
            return MQO_PT_SUB_NOT_LIVE;
        if (sc->relay)
            return MQO_PT_RELAY;
        if (!eng_at_boundary(sc, MQO_S2C))
            return MQO_PT_STREAMING; /* a large packet is streaming to it */
        int r = acl_ok(e, sc, x->topic, MQO_ACL_READ);
        if (r < 0)
            return MQO_PT_ACL_UNKNOWN;
        if (r == 0)
            continue; /* the broker silently refuses this delivery, and so do we */
        if (r == ENG_ACL_SPLIT)
            return MQO_PT_ACL_CHANGED; /* only the broker knows which version it uses */
        /* delivered at min(published, granted), or at the granted QoS when the broker
         * upgrades outgoing QoS */
        uint8_t dq = qos < m->qos && !e->cfg.upgrade_outgoing_qos ? qos : m->qos;
        if (dq > 1)
            return MQO_PT_QOS2;
        uint32_t n_ids;
        const uint32_t *ids = mqo_match_ids(ms, i, &n_ids);
        *pe = (struct plan_ent){.qos = dq, .ids = sc->version == MQO_MQTT_V5 && n_ids};
        if (pe->qos) {
            if (s->persistent)
                return MQO_PT_PERSISTENT;
            /* the client's Receive Maximum covers the broker's deliveries and ours */
            if (sc->eng_inflight >= e->cfg.inflight_default || cpids(sc)->cpid.n >= 65535 ||
                (sc->recv_max && sc->broker_inflight + sc->eng_inflight >= sc->recv_max))
                return MQO_PT_INFLIGHT;
            /* the identifier of each delivery is recorded (the client's PUBACK is ours) */
            if (!cpids_get(sc))
                return MQO_PT_NOMEM;
        }
        struct mqo_pub_spec sp;
        /* a v3 subscriber gets none of the match's identifiers */
        spec_for(x, sc->version, pe->qos, pe->ids ? ids : NULL, pe->ids ? n_ids : 0, &sp);
        size_t sz = mqo_mqtt_publish_size(&sp);
        if (sz == 0 || sz > PLAN_SIZE_MAX ||
            (sc->client_max_packet && sz > sc->client_max_packet))
            return MQO_PT_SIZE;
        pe->size = (uint32_t)sz;
        if (e->cfg.ops.room && e->cfg.ops.room(e->cfg.ud, sc) < sz) {
            if (pe->qos)
                return MQO_PT_ROOM;
            pe->drop = 1;
        }
    }
    *np = ms->n;
    return MQO_PT_NONE;
}

/* Serializes one variant of the message. NULL on ENOMEM. */
static struct mqo_msg *build(const struct pubctx *x, uint8_t version, uint8_t qos,
                             const uint32_t *ids, uint32_t n_ids, uint32_t size,
                             uint32_t *pid_off)
{
    struct mqo_pub_spec sp;
    spec_for(x, version, qos, ids, n_ids, &sp);
    struct mqo_msg *m = mqo_msg_new(size);
    if (!m)
        return NULL;
    if (mqo_mqtt_enc_publish(m->data, size, &sp, pid_off) != (ssize_t)size) {
        mqo_msg_unref(m);
        return NULL;
    }
    return m;
}

/* Inserts the planned deliveries, the publisher's PUBACK, and consumes the PUBLISH. */
static int fan_out(struct mqo_engine *e, struct mqo_conn *c, const struct pubctx *x,
                   size_t np, size_t pkt_len, int had_matches)
{
    /* shared variants: [v5][qos] without subscription identifiers */
    struct mqo_msg *var[2][2] = {{NULL, NULL}, {NULL, NULL}};
    uint32_t var_off[2][2] = {{0, 0}, {0, 0}};
    int rc = 0;
    size_t i;
    /* build everything first: a message is consumed entirely or not at all */
    /* deliveries with subscription identifiers have a message of their own (own[i]) */
    struct mqo_msg **own = NULL;
    uint32_t *own_off = NULL;
    size_t n_own = 0;
    for (i = 0; i < np; i++) {
        struct plan_ent *pe = &e->plan[i];
        if (!pe->size || pe->drop)
            continue;
        if (pe->ids) {
            n_own++;
            continue;
        }
        uint8_t version = plan_conn(e, i)->version;
        int v5 = version == MQO_MQTT_V5;
        if (!var[v5][pe->qos]) {
            var[v5][pe->qos] = build(x, version, pe->qos, NULL, 0, pe->size,
                                     &var_off[v5][pe->qos]);
            if (!var[v5][pe->qos]) {
                rc = -ENOMEM;
                goto out;
            }
        }
    }
    if (n_own) {
        own = calloc(np, sizeof *own + sizeof *own_off);
        if (!own) {
            rc = -ENOMEM;
            goto out;
        }
        own_off = (uint32_t *)(own + np);
    }
    for (i = 0; n_own && i < np; i++) {
        struct plan_ent *pe = &e->plan[i];
        if (!pe->size || pe->drop || !pe->ids)
            continue;
        uint32_t n_ids;
        const uint32_t *ids = mqo_match_ids(&e->ms, i, &n_ids);
        own[i] = build(x, MQO_MQTT_V5, pe->qos, ids, n_ids, pe->size, &own_off[i]);
        if (!own[i]) {
            rc = -ENOMEM;
            goto out;
        }
    }

    eng_consume(c, MQO_C2S, pkt_len);
    e->st.consumed++;
    c->last_reason = MQO_PT_NONE;
    for (i = 0; i < np; i++) {
        struct plan_ent *pe = &e->plan[i];
        if (!pe->size)
            continue;
        if (pe->drop) {
            e->st.dropped_qos0++;
            continue;
        }
        struct mqo_conn *sc = plan_conn(e, i);
        int v5 = sc->version == MQO_MQTT_V5;
        struct mqo_msg *mine = own ? own[i] : NULL;
        struct mqo_out o = {.msg = mine ? mine : var[v5][pe->qos]};
        o.b0 = o.msg->data[0];
        if (pe->qos) {
            o.pid_off = mine ? own_off[i] : var_off[v5][pe->qos];
            o.pid = eng_pid_alloc(sc);
            sc->eng_pids = 1;
            mqo_map_put(&sc->pids->cpid, o.pid, PID_ENGINE); /* allocated by the plan */
            sc->eng_inflight++;
            e->st.deliveries_qos1++;
        }
        eng_insert(sc, MQO_S2C, &o);
        e->st.deliveries++;
    }
    if (x->pk->u.publish.qos == 1) {
        uint8_t ack[5];
        uint8_t reason = (c->version == MQO_MQTT_V5 && !had_matches)
                             ? MQO_RC_NO_MATCHING_SUBSCRIBERS
                             : MQO_RC_SUCCESS;
        size_t n = mqo_mqtt_enc_ack(ack, MQO_PUBACK, x->pk->pid, c->version, reason);
        eng_insert_bytes(c, MQO_S2C, ack, n);
        e->st.pubacks_sent++;
    }
out:
    for (i = 0; own && i < np; i++)
        mqo_msg_unref(own[i]);
    free(own);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            mqo_msg_unref(var[a][b]);
    return rc;
}

static int expect_add(struct mqo_conn *sc, uint64_t pub_id, uint64_t hash, uint64_t deadline)
{
    /* no count of the room: it is exp_room(n_exp) at least, so it must grow only where that
     * steps up (a power of two) or when there is none */
    if (sc->n_exp == UINT32_MAX)
        return -ENOMEM;
    if (!sc->exp || (sc->n_exp >= EXP_MIN && (sc->n_exp & (sc->n_exp - 1)) == 0)) {
        size_t cap = exp_room(sc->n_exp);
        struct expect *v = realloc(sc->exp, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        sc->exp = v;
    }
    sc->exp[sc->n_exp++] = (struct expect){.pub_id = pub_id, .hash = hash, .deadline = deadline};
    return 0;
}

void passthrough_holds(struct mqo_engine *e, struct mqo_conn *c, struct mqo_str topic,
                       uint8_t qos, uint16_t pid, uint64_t h, int matched, uint64_t now)
{
    if (e->cfg.acl_mode == MQO_ACL_NONE || (!e->cfg.exclusive && !e->cfg.broker_view))
        return; /* nothing is ever offloaded: no order to keep across a switch */
    uint32_t held = c->order_pending;
    if (qos && !mqo_map_get(&cpids(c)->pt_acks, pid, NULL)) {
        struct conn_pids *m = cpids_get(c);
        if (m && mqo_map_put(&m->pt_acks, pid, qos) == 0)
            c->order_pending++;
    }
    /* Only where every ACL version denies is the broker sure to deliver nothing. Where they
     * disagree (or the rules are unknown) it may deliver, and a later offloaded message must
     * not overtake that copy: hold for it; if the broker skips it after all, the hold expires
     * after order_hold_ms (slower, never out of order). */
    if (topic.len == 0 || (c->sess && acl_ok(e, c, topic, MQO_ACL_WRITE) == 0))
        return; /* the broker delivers nothing */
    /* Nothing to wait for (nobody expects it, no ack): the broker may take it after a
     * subscription that reaches it meanwhile on another connection, and deliver it there,
     * while a later message of c offloaded now would miss that subscriber. */
    if (!c->sess || (!matched && mqo_trie_match(e->trie, topic.p, topic.len, c->sess, &e->ms) < 0)) {
        if (c->order_pending == held)
            c->barrier_due = 1;
        return;
    }
    for (size_t i = 0; i < e->ms.n; i++) {
        struct session *s = e->ms.v[i].owner;
        struct mqo_conn *sc = s->conn;
        /* A shared subscription gets the message at one member of its group, which one is
         * the broker's choice: every member is held for it (a member the broker skips holds
         * the publisher until order_hold_ms, slower but never out of order). */
        if (!sc || sc->dead)
            continue;
        if (acl_ok(e, sc, topic, MQO_ACL_READ) == 0)
            continue;
        if (expect_add(sc, c->id, h, now + e->order_hold_ns) == 0)
            c->order_pending++;
    }
    if (c->order_pending == held)
        c->barrier_due = 1;
}

int eng_publish(struct mqo_conn *c, const struct mqo_pkt *pk, const uint8_t *p, size_t n,
                uint64_t now)
{
    struct mqo_engine *e = c->eng;
    struct pubctx x = {.pk = pk, .raw_topic = pk->u.publish.topic};
    e->st.publish_in++;
    if (c->version == MQO_MQTT_V5 && !eng_alias_topic(c, MQO_C2S, pk, &x.raw_topic))
        x.raw_topic = (struct mqo_str){0};
    if (x.raw_topic.len && eng_mounted(e, x.raw_topic, &x.topic, x.topic_stack,
                                       sizeof x.topic_stack, &x.topic_heap) != 0)
        x.topic = (struct mqo_str){0};

    size_t np = 0;
    int matched = 0;
    enum mqo_pt_reason r = MQO_PT_NONE;
    if (c->version == MQO_MQTT_V5 && pk->props.raw_len) {
        x.props = pk->props.raw_len + 5 <= sizeof x.props_stack ? x.props_stack
                                                                  : malloc(pk->props.raw_len + 5);
        if (x.props)
            x.props_len = delivered_props(pk->props.raw, pk->props.raw_len, x.props);
        else
            r = MQO_PT_NOMEM;
    }
    if (r == MQO_PT_NONE)
        r = decide(e, c, &x, n, &np, &matched);
    int barrier = 0;
    if (r == MQO_PT_NONE && c->barrier_due) {
        /* an earlier one may still be on its way into the broker (passthrough_holds): this one
         * goes there too, followed by a ping whose answer says the broker took both */
        r = MQO_PT_ORDER;
        barrier = 1;
    }
    /* Mosquitto answers "no matching subscribers" only when no subscription matched at all:
     * the publisher's own no-local ones and those it may not read count as matches */
    if (r == MQO_PT_NONE && fan_out(e, c, &x, np, n, e->ms.n > 0 || e->ms.n_self > 0) != 0)
        r = MQO_PT_NOMEM;
    if (x.props != x.props_stack)
        free(x.props);
    if (e->bv.observe)
        e->bv.observe(e->bv.observe_ud, now, r == MQO_PT_NONE);
    if (r != MQO_PT_NONE) {
        /* passthrough: the broker does it */
        e->st.passthrough++;
        e->st.pt_reason[r]++;
        c->last_reason = r;
        passthrough_holds(e, c, x.topic, pk->u.publish.qos, pk->pid,
                          msg_hash(x.topic, pk->u.publish.payload, pk->u.publish.payload_len),
                          matched, now);
        eng_forward(c, MQO_C2S, p, n);
        if (barrier)
            eng_order_barrier(c);
    }
    free(x.topic_heap);
    return 0;
}

/* ---- ordering holds ---- */

static void release(struct mqo_engine *e, uint64_t pub_id)
{
    struct mqo_conn *pc = eng_conn_by_id(e, pub_id);
    if (pc && pc->order_pending)
        pc->order_pending--;
}

void order_seen_hash(struct mqo_conn *c, uint64_t h)
{
    for (size_t i = 0; i < c->n_exp; i++) {
        if (c->exp[i].hash != h)
            continue;
        uint64_t pub = c->exp[i].pub_id;
        memmove(&c->exp[i], &c->exp[i + 1], (c->n_exp - i - 1) * sizeof c->exp[0]);
        c->n_exp--;
        release(c->eng, pub);
        return;
    }
}

void order_seen(struct mqo_conn *c, const struct mqo_pkt *pk)
{
    struct mqo_str t = pk->u.publish.topic;
    if (c->version == MQO_MQTT_V5 && !eng_alias_topic(c, MQO_S2C, pk, &t))
        return;
    if (!c->n_exp)
        return;
    order_seen_hash(c, msg_hash(t, pk->u.publish.payload, pk->u.publish.payload_len));
}

void order_ack_seen(struct mqo_conn *c, const struct mqo_pkt *pk)
{
    uint64_t qos;
    if (!mqo_map_get(&cpids(c)->pt_acks, pk->pid, &qos))
        return;
    int done = pk->type == MQO_PUBCOMP || (pk->type == MQO_PUBACK && qos == 1) ||
               (pk->type == MQO_PUBREC && (qos == 1 || pk->reason >= 0x80));
    if (!done)
        return;
    mqo_map_del(&c->pids->pt_acks, pk->pid); /* found above: the maps exist */
    if (c->order_pending)
        c->order_pending--;
}

void order_conn_closed(struct mqo_engine *e, struct mqo_conn *c)
{
    for (size_t i = 0; i < c->n_exp; i++)
        release(e, c->exp[i].pub_id);
    c->n_exp = 0;
}

void order_tick(struct mqo_engine *e, struct mqo_conn *c, uint64_t now)
{
    if (!c->n_exp)
        return;
    /* while bytes wait toward this subscriber, the broker's copy may be waiting behind them
     * (its window is shared with ours): keep holding */
    int backlog = e->cfg.ops.queued && e->cfg.ops.queued(e->cfg.ud, c) > 0;
    size_t j = 0;
    for (size_t i = 0; i < c->n_exp; i++) {
        if (backlog && c->exp[i].deadline < now + e->order_hold_ns)
            c->exp[i].deadline = now + e->order_hold_ns;
        if (c->exp[i].deadline <= now) {
            e->st.order_expired++;
            release(e, c->exp[i].pub_id);
            continue;
        }
        c->exp[j++] = c->exp[i];
    }
    c->n_exp = j;
}
