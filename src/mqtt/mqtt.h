/* mqtt/: streaming MQTT codec, versions 3.1, 3.1.1 and 5.0.
 *
 * No I/O, no allocation. The codec works on complete packets delimited by mqo_mqtt_frame();
 * a caller that receives a byte stream keeps the bytes of an incomplete packet until
 * mqo_mqtt_frame() reports it whole. Decoded packets point into the caller's bytes
 * (zero copy): a struct mqo_pkt is valid only while those bytes are.
 *
 * Errors are negative MQTT reason codes (-MQO_RC_MALFORMED, -MQO_RC_PROTOCOL_ERROR, ...), so the
 * caller can put the code in a v5 DISCONNECT or CONNACK.
 */
#ifndef MQO_MQTT_H
#define MQO_MQTT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Protocol levels as carried in CONNECT. */
#define MQO_MQTT_V31 3
#define MQO_MQTT_V311 4
#define MQO_MQTT_V5 5

/* Largest remaining length the spec allows (4-byte varint). */
#define MQO_MQTT_MAX_REMAINING 268435455u

enum mqo_ptype {
    MQO_CONNECT = 1,
    MQO_CONNACK = 2,
    MQO_PUBLISH = 3,
    MQO_PUBACK = 4,
    MQO_PUBREC = 5,
    MQO_PUBREL = 6,
    MQO_PUBCOMP = 7,
    MQO_SUBSCRIBE = 8,
    MQO_SUBACK = 9,
    MQO_UNSUBSCRIBE = 10,
    MQO_UNSUBACK = 11,
    MQO_PINGREQ = 12,
    MQO_PINGRESP = 13,
    MQO_DISCONNECT = 14,
    MQO_AUTH = 15,
};

/* Direction a packet travels; several packets are valid one way only. */
enum mqo_dir {
    MQO_C2S = 0, /* client -> server (broker) */
    MQO_S2C = 1, /* server (broker) -> client */
};

/* MQTT 5 reason codes used by the codec and the engine (spec 2.4). */
enum mqo_rc {
    MQO_RC_SUCCESS = 0x00,
    MQO_RC_GRANTED_QOS1 = 0x01,
    MQO_RC_GRANTED_QOS2 = 0x02,
    MQO_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQO_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQO_RC_CONTINUE_AUTH = 0x18,
    MQO_RC_REAUTHENTICATE = 0x19,
    MQO_RC_UNSPECIFIED = 0x80,
    MQO_RC_MALFORMED = 0x81,
    MQO_RC_PROTOCOL_ERROR = 0x82,
    MQO_RC_IMPL_SPECIFIC = 0x83,
    MQO_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQO_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQO_RC_NOT_AUTHORIZED = 0x87,
    MQO_RC_SERVER_UNAVAILABLE = 0x88,
    MQO_RC_SERVER_BUSY = 0x89,
    MQO_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQO_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQO_RC_TOPIC_NAME_INVALID = 0x90,
    MQO_RC_PACKET_ID_IN_USE = 0x91,
    MQO_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQO_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQO_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQO_RC_PACKET_TOO_LARGE = 0x95,
    MQO_RC_QUOTA_EXCEEDED = 0x97,
    MQO_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQO_RC_QOS_NOT_SUPPORTED = 0x9B,
};

/* v5 property identifiers (spec 2.2.2.2). */
enum mqo_prop_id {
    MQO_PROP_PAYLOAD_FORMAT = 0x01,
    MQO_PROP_MESSAGE_EXPIRY = 0x02,
    MQO_PROP_CONTENT_TYPE = 0x03,
    MQO_PROP_RESPONSE_TOPIC = 0x08,
    MQO_PROP_CORRELATION_DATA = 0x09,
    MQO_PROP_SUBSCRIPTION_ID = 0x0B,
    MQO_PROP_SESSION_EXPIRY = 0x11,
    MQO_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQO_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQO_PROP_AUTH_METHOD = 0x15,
    MQO_PROP_AUTH_DATA = 0x16,
    MQO_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQO_PROP_WILL_DELAY = 0x18,
    MQO_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQO_PROP_RESPONSE_INFO = 0x1A,
    MQO_PROP_SERVER_REFERENCE = 0x1C,
    MQO_PROP_REASON_STRING = 0x1F,
    MQO_PROP_RECEIVE_MAXIMUM = 0x21,
    MQO_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQO_PROP_TOPIC_ALIAS = 0x23,
    MQO_PROP_MAXIMUM_QOS = 0x24,
    MQO_PROP_RETAIN_AVAILABLE = 0x25,
    MQO_PROP_USER_PROPERTY = 0x26,
    MQO_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQO_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQO_PROP_SUB_ID_AVAILABLE = 0x29,
    MQO_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* A length-prefixed string or binary field, pointing into the packet (not NUL-terminated). */
struct mqo_str {
    const uint8_t *p;
    uint16_t len;
};

/* Subscription identifiers kept per packet; a PUBLISH from the server may carry more
 * (n_sub_ids counts them all, sub_ids holds the first MQO_MAX_SUB_IDS). */
#define MQO_MAX_SUB_IDS 16

/* Decoded v5 properties of one packet (or of a CONNECT's will). Fields are valid when their
 * bit is set in `present` (MQO_PROP_HAS). All-zero when the packet has no properties or is v3. */
struct mqo_props {
    uint64_t present; /* bit (1 << id) per property seen */
    const uint8_t *raw; /* the property bytes, without their length varint (NULL when empty) */
    uint32_t raw_len;
    uint8_t payload_format;
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    uint16_t server_keep_alive;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint32_t message_expiry;
    uint32_t session_expiry;
    uint32_t will_delay;
    uint32_t maximum_packet_size;
    uint32_t n_user_props;
    uint32_t n_sub_ids;
    uint32_t sub_ids[MQO_MAX_SUB_IDS];
    struct mqo_str content_type;
    struct mqo_str response_topic;
    struct mqo_str correlation_data;
    struct mqo_str assigned_client_id;
    struct mqo_str auth_method;
    struct mqo_str auth_data;
    struct mqo_str response_info;
    struct mqo_str server_reference;
    struct mqo_str reason_string;
};
#define MQO_PROP_HAS(pr, id) ((((pr)->present) >> (id)) & 1u)

/* CONNECT flags (byte 7 of the variable header). */
#define MQO_CONNECT_CLEAN 0x02
#define MQO_CONNECT_WILL 0x04
#define MQO_CONNECT_WILL_QOS(f) (((f) >> 3) & 3)
#define MQO_CONNECT_WILL_RETAIN 0x20
#define MQO_CONNECT_PASSWORD 0x40
#define MQO_CONNECT_USERNAME 0x80

/* SUBSCRIBE options byte: QoS bits 0-1, no-local bit 2, retain-as-published bit 3,
 * retain handling bits 4-5 (v5; v3 uses the QoS bits only). */
#define MQO_SUBOPT_QOS(o) ((o) & 3)
#define MQO_SUBOPT_NO_LOCAL 0x04
#define MQO_SUBOPT_RAP 0x08
#define MQO_SUBOPT_RH(o) (((o) >> 4) & 3)

/* Fixed header of one packet. */
struct mqo_frame {
    uint8_t type;       /* enum mqo_ptype */
    uint8_t flags;      /* low 4 bits of byte 0 */
    uint8_t hdr_len;    /* 2..5: byte 0 plus the remaining-length varint */
    uint32_t remaining; /* remaining length */
    uint32_t total;     /* hdr_len + remaining */
};

/* Finds the packet that starts at p[0].
 * Returns the packet's total length (> 0) when all of it is in p[0..n), 0 when more bytes are
 * needed, -MQO_RC_MALFORMED for a remaining length that is not a valid varint (a 5th
 * continuation byte; non-minimal encodings are accepted, as the reference broker does),
 * -MQO_RC_PACKET_TOO_LARGE when total > max_packet (0: no limit beyond the spec's).
 * Packet type 0 is -MQO_RC_MALFORMED. The varint is checked as soon as its bytes are present,
 * so an error may be reported before the whole packet arrived. f is filled when the header is
 * complete (also when 0 is returned because the body is incomplete). */
ssize_t mqo_mqtt_frame(const uint8_t *p, size_t n, uint32_t max_packet, struct mqo_frame *f);

/* Values of mqo_pkt.form. */
#define MQO_FORM_SHORT 0  /* nothing after the packet identifier (or after the fixed header) */
#define MQO_FORM_REASON 1 /* the reason code only */
#define MQO_FORM_PROPS 2  /* the reason code and a property block (possibly empty) */

/* A decoded packet. Pointers refer to the bytes given to mqo_mqtt_decode(). */
struct mqo_pkt {
    uint8_t type;    /* enum mqo_ptype */
    uint8_t flags;   /* low 4 bits of byte 0 */
    uint8_t version; /* protocol level it was decoded for */
    uint8_t reason;  /* v5 reason code of acks, DISCONNECT, AUTH; CONNACK return code (v3 too) */
    uint16_t pid;    /* packet identifier, 0 when the packet has none */
    uint8_t hdr_len; /* fixed header bytes as received (2..5; a non-minimal remaining-length
                      * varint is kept by mqo_mqtt_encode). 0 in a built packet: minimal. */
    uint8_t form;    /* v5 PUBACK/PUBREC/PUBREL/PUBCOMP/DISCONNECT/AUTH: what the wire had after
                      * the packet identifier (MQO_FORM_*); mqo_mqtt_encode() writes at least
                      * what reason and props need. 0 for other packets and for v3. */
    uint32_t len;    /* total bytes of the packet */
    struct mqo_props props;
    union {
        struct {
            struct mqo_str proto_name;
            uint8_t level;  /* protocol level byte without bit 7: 3, 4 or 5 */
            uint8_t bridge; /* 1 when the level byte had bit 7 set (Mosquitto bridges) */
            uint8_t cflags;
            uint16_t keepalive;
            struct mqo_str client_id;
            struct mqo_props will_props;
            struct mqo_str will_topic;
            struct mqo_str will_payload;
            /* username / password: present when their cflags bit is set. MQTT 3.1 only: p is
             * NULL when the bit is set but the packet ends before the field (Mosquitto accepts
             * that and ignores the flag); the encoder then leaves the field out. */
            struct mqo_str username;
            struct mqo_str password;
        } connect;
        struct {
            uint8_t session_present;
        } connack;
        struct {
            uint8_t qos, retain, dup;
            struct mqo_str topic;   /* may be empty in v5 when a topic alias is used */
            uint32_t pid_off;       /* offset of the packet identifier, 0 when qos == 0 */
            uint32_t props_off;     /* offset of the property length varint (v5), else 0 */
            uint32_t payload_off;   /* offset of the payload */
            const uint8_t *payload;
            uint32_t payload_len;
        } publish;
        struct {
            /* SUBSCRIBE and UNSUBSCRIBE: the topic filter list, walk it with mqo_mqtt_sub_next */
            const uint8_t *list;
            uint32_t list_len;
            uint32_t count;
        } sub;
        struct {
            /* SUBACK and UNSUBACK (v5): one reason code per filter; v3 UNSUBACK: count 0 */
            const uint8_t *codes;
            uint32_t count;
        } suback;
    } u;
};

/* One entry of a SUBSCRIBE (filter + options) or UNSUBSCRIBE (filter, opts 0). */
struct mqo_sub_entry {
    struct mqo_str filter;
    uint8_t opts;
};

/* Decodes and validates one complete packet p[0..len) (len as returned by mqo_mqtt_frame)
 * travelling in direction dir on a connection of protocol level `version` (3, 4 or 5).
 * A CONNECT is decoded whatever `version` says (it carries its own level).
 * Validation is the spec's: reserved flag bits, QoS 3, zero packet identifiers where one is
 * required, UTF-8 strings (MQTT rules), topic names without wildcards, filter syntax, v5
 * properties (allowed in this packet type, value ranges, duplicates), packets valid in this
 * direction only, trailing bytes. Where the spec leaves the receiver's reaction open, the
 * checks and codes are those of Mosquitto 2.0.11 (listed at the top of codec.c): e.g. DUP with
 * QoS 0 and any reason code in acks are accepted, MQTT 3.1 packets have no reserved flags.
 * Codes: -MQO_RC_MALFORMED (encoding, UTF-8, reserved bits, unknown or misplaced property,
 * bad filter), -MQO_RC_PROTOCOL_ERROR (rule violations, wrong direction, a level other than
 * 3..5 for a packet that is not a CONNECT), -MQO_RC_TOPIC_NAME_INVALID (wildcards in a
 * PUBLISH or will topic), -MQO_RC_UNSUPPORTED_PROTOCOL_VERSION (CONNECT name/level).
 * Returns 0 and fills out, or a negative reason code; out is unspecified on error. */
int mqo_mqtt_decode(const uint8_t *p, size_t len, uint8_t version, enum mqo_dir dir,
                    struct mqo_pkt *out);

/* Decodes the head of a PUBLISH of which only p[0..avail) is present (a packet streamed on
 * because it is too large to hold whole): f is its fixed header from mqo_mqtt_frame(). The
 * head is the fixed header, topic, packet identifier and v5 properties. Returns the head's
 * length (the payload's offset) and fills out as mqo_mqtt_decode() would, except that
 * u.publish.payload points at the payload bytes present and u.publish.payload_len is the
 * whole payload's length; 0 when the head is not complete yet; a negative reason code (the
 * one mqo_mqtt_decode() gives for those bytes) when the head is invalid. Validation of the
 * head is mqo_mqtt_decode()'s; the payload is not looked at. */
ssize_t mqo_mqtt_decode_publish_head(const uint8_t *p, size_t avail, const struct mqo_frame *f,
                                     uint8_t version, enum mqo_dir dir, struct mqo_pkt *out);

/* Walks the filter list of a decoded SUBSCRIBE/UNSUBSCRIBE. *off starts at 0.
 * Returns 1 and fills e, or 0 after the last entry. */
int mqo_mqtt_sub_next(const struct mqo_pkt *pk, uint32_t *off, struct mqo_sub_entry *e);

/* Returns 0 when s[0..len) is a valid MQTT UTF-8 string (well-formed UTF-8, no U+0000,
 * no surrogates, and the further code points the reference broker refuses: overlong forms,
 * code points above U+10FFFF, the controls U+0001..U+001F and U+007F..U+009F, the
 * non-characters U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF), else -MQO_RC_MALFORMED.
 * No length limit is applied (a payload may be checked too). */
int mqo_mqtt_utf8_check(const uint8_t *s, size_t len);

/* ---- v5 properties ---- */

/* One property of a block, as walked by mqo_props_next(). */
struct mqo_prop {
    uint8_t id;        /* enum mqo_prop_id */
    uint32_t off;      /* offset of the identifier in the block */
    uint32_t len;      /* encoded bytes, identifier included */
    uint32_t u;        /* value of byte, two-byte, four-byte and varint properties */
    struct mqo_str s;  /* string / binary value; User Property: the name */
    struct mqo_str s2; /* User Property: the value */
};

/* Walks the property block raw[0..len) (without its length varint). *off starts at 0.
 * Returns 1 and fills pr, 0 at the end of the block, -MQO_RC_MALFORMED for an unknown
 * identifier (the rest cannot be parsed), a value that runs past the block or a non-minimal
 * varint. Only the encoding is checked (no UTF-8, ranges, duplicates or packet rules). */
int mqo_props_next(const uint8_t *raw, uint32_t len, uint32_t *off, struct mqo_prop *pr);

/* Parses and validates the property block raw[0..len) of a packet of type ptype (enum
 * mqo_ptype, or 0 for a CONNECT's will properties) travelling in direction dir, filling out.
 * -MQO_RC_MALFORMED: encoding (unknown identifier, truncated value, non-minimal varint),
 * UTF-8 strings, an identifier not allowed in that packet type (spec 2.2.2.2, and what the
 * reference broker answers), Topic Alias 0 (reference broker).
 * -MQO_RC_PROTOCOL_ERROR: a duplicate (User Property may repeat; Subscription Identifier only in
 * a server->client PUBLISH), a Subscription Identifier in a client->server PUBLISH or equal to 0,
 * byte properties other than 0/1, Receive Maximum or Maximum Packet Size 0, a Response Topic
 * that is not a valid topic name. The whole block is checked for encoding first. */
int mqo_props_parse(const uint8_t *raw, uint32_t len, uint8_t ptype, enum mqo_dir dir,
                    struct mqo_props *out);

/* ---- encoding ---- */

/* Encodes a remaining-length varint into out[0..4). Returns bytes written (1..4), 0 if v is
 * larger than MQO_MQTT_MAX_REMAINING. */
unsigned mqo_mqtt_varint_put(uint8_t *out, uint32_t v);
/* Bytes mqo_mqtt_varint_put() would write for v. */
unsigned mqo_mqtt_varint_len(uint32_t v);

/* Builder for v5 property blocks. An all-zero struct is empty. Every add appends the encoded
 * property (id + value); returns 0, or -ENOSPC when data[] is full (the builder is then
 * unchanged), or -EINVAL for a value the type cannot hold (varint over 268435455). */
struct mqo_propbuf {
    uint8_t data[1024];
    uint32_t len;
};
int mqo_props_add_u8(struct mqo_propbuf *b, uint8_t id, uint8_t v);
int mqo_props_add_u16(struct mqo_propbuf *b, uint8_t id, uint16_t v);
int mqo_props_add_u32(struct mqo_propbuf *b, uint8_t id, uint32_t v);
int mqo_props_add_varint(struct mqo_propbuf *b, uint8_t id, uint32_t v);
int mqo_props_add_str(struct mqo_propbuf *b, uint8_t id, const void *s, uint16_t len);
int mqo_props_add_pair(struct mqo_propbuf *b, uint8_t id, const void *k, uint16_t klen,
                       const void *v, uint16_t vlen);

/* Copies the property block raw[0..len) (already validated) to out, leaving out every property
 * whose identifier is `drop`. Returns the bytes written (<= len). out may equal raw (in-place);
 * copying stops at the first property that does not parse. */
uint32_t mqo_props_filter(const uint8_t *raw, uint32_t len, uint8_t drop, uint8_t *out);

/* What mqo_mqtt_enc_publish() serializes. */
struct mqo_pub_spec {
    uint8_t version; /* 3, 4 or 5 */
    uint8_t qos, retain, dup;
    uint16_t pid; /* ignored when qos == 0 */
    struct mqo_str topic;
    const uint8_t *payload;
    uint32_t payload_len;
    /* v5 only: one Subscription Identifier property per sub_ids entry, followed by the
     * property bytes copied verbatim (without their length): Mosquitto 2.0.11's order. */
    const uint8_t *props;
    uint32_t props_len;
    const uint32_t *sub_ids;
    unsigned n_sub_ids;
};

/* Exact encoded size of the PUBLISH described by s, 0 when it cannot be encoded (version not
 * 3..5, qos > 2, DUP with qos 0, a Subscription Identifier 0 or over 268435455, NULL pointers
 * with non-zero lengths, a remaining length over the limit). */
size_t mqo_mqtt_publish_size(const struct mqo_pub_spec *s);
/* Serializes a PUBLISH into out[0..cap). Returns bytes written, or -ENOSPC / -EINVAL.
 * When pid_off is not NULL it receives the offset of the packet identifier (0 for qos 0). */
ssize_t mqo_mqtt_enc_publish(uint8_t *out, size_t cap, const struct mqo_pub_spec *s,
                             uint32_t *pid_off);

/* Patches a serialized PUBLISH in place for one subscriber: QoS and DUP bits of byte 0 and,
 * when the packet has a packet identifier field (pid_off != 0), the identifier.
 * The QoS must keep the packet's shape: a packet encoded without an identifier stays qos 0.
 * The patcher enforces it: without an identifier field qos and dup are forced to 0; with one,
 * qos 0 becomes 1 (never pass that). */
void mqo_mqtt_publish_patch(uint8_t *pkt, uint32_t pid_off, uint8_t qos, uint8_t dup,
                            uint16_t pid);

/* PUBACK, PUBREC, PUBREL, PUBCOMP. v5 with reason != 0 adds the reason code byte (no
 * properties). Returns bytes written (4 or 5) into out[0..5), 0 for another type. */
size_t mqo_mqtt_enc_ack(uint8_t out[5], uint8_t type, uint16_t pid, uint8_t version,
                        uint8_t reason);
/* PINGREQ / PINGRESP: 2 bytes. */
size_t mqo_mqtt_enc_ping(uint8_t out[2], uint8_t type);
/* DISCONNECT: v3 2 bytes; v5 with reason (no properties) 3 bytes (2 when reason is 0). */
size_t mqo_mqtt_enc_disconnect(uint8_t out[3], uint8_t version, uint8_t reason);

/* Generic encoder used by tests, tools and fuzzers: serializes any decoded packet back to bytes
 * (properties from props.raw / will_props.raw verbatim), so decode(encode(pk)) == pk and
 * encode(decode(b)) == b for any valid b. Byte 0 is type << 4 | flags, except PUBLISH (from
 * u.publish.dup/qos/retain) and PUBREL/SUBSCRIBE/UNSUBSCRIBE built (hdr_len 0) with flags 0,
 * which get 0x2.
 * A CONNECT with an empty proto_name gets the level's name. Sizes are computed from the
 * fields (len is ignored). Returns bytes written or -ENOSPC / -EINVAL. */
ssize_t mqo_mqtt_encode(const struct mqo_pkt *pk, uint8_t *out, size_t cap);

/* Name of a packet type ("PUBLISH"), "?" when unknown. */
const char *mqo_mqtt_type_name(uint8_t type);

#endif
