/* A native WebSocket load client for bench_gateway_http's fan-out runs.
 *
 * The Python clients spend 10-30 us of the bench machine's 2 cores on each read; at 2,000 clients
 * that CPU competes with the gateway it measures. This client does the same job (the upgrade,
 * frames parsed from the bytes, one receive time per read, pings answered) in a few us per read.
 * It speaks the bench's worker protocol on stdin/stdout:
 *
 *   stdout  {"ready": {"live": N, "failed": {...}}}   once every client had its first frame,
 *                                                     failed or closed, or after connect_timeout
 *   stdin   {"start": S, "end": E}                    the recording window (wall-clock seconds)
 *   stdout  {"result": {"kinds": {...}, "closes": {...}}}
 *
 * and records, for every "diff" or "bookTicker" frame received in the window: the client's symbol
 * index, the top-level "u", the receive time and the top-level "E" (0 if absent). Other frame
 * types are counted by "type". The records go to the output file as five little-endian arrays:
 * int64 n, int64 clients, then sym[n] int64, u[n] int64, t[n] double, e[n] int64,
 * frames[clients] int64 (frames of any type received by each client in the window).
 *
 * Usage: ws_reader PORT TOKEN CLIENTS_FILE CONNECT_TIMEOUT_S OUT_FILE
 * CLIENTS_FILE: one client per line, "PATH SYMBOL_INDEX".
 * The gateway never fragments, masks or compresses its frames; this client relies on that.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECTING_AT_ONCE 32
#define HANDSHAKE_TIMEOUT_S 30.0
#define MAX_KINDS 32
#define MAX_CLOSE_CODES 32

enum state { WAITING, CONNECTING, UPGRADING, OPEN, DONE };

struct client {
    int fd;
    enum state state;
    int live; /* had its first frame and is not closed */
    int settled;
    long long sym;
    char *path;
    double began; /* when the connect started, for the handshake timeout */
    unsigned char *buf;
    size_t len, cap;
};

struct counter {
    char name[48];
    long long n;
};

static struct client *clients;
static size_t n_clients;
static int port;
static const char *token;
static double win_start = 1e300, win_end = 1e300;
static int epfd;
static size_t handshaking; /* clients connecting or upgrading */

static struct counter kinds[MAX_KINDS], closes[MAX_CLOSE_CODES], failures[8];
static size_t n_kinds, n_closes, n_failures;

static int64_t *rec_sym, *rec_u, *rec_e, *frames;
static double *rec_t;
static size_t rec_n, rec_cap;

static double now_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "ws_reader: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *grow(void *p, size_t size) {
    void *q = realloc(p, size);
    if (q == NULL) die("out of memory");
    return q;
}

static void count(struct counter *table, size_t *n, size_t max, const char *name, size_t name_len) {
    if (name_len >= sizeof table[0].name) name_len = sizeof table[0].name - 1;
    for (size_t i = 0; i < *n; i++) {
        if (strlen(table[i].name) == name_len && memcmp(table[i].name, name, name_len) == 0) {
            table[i].n++;
            return;
        }
    }
    if (*n == max) return; /* more distinct names than a run ever has: not worth a bigger table */
    memcpy(table[*n].name, name, name_len);
    table[*n].name[name_len] = 0;
    table[*n].n = 1;
    (*n)++;
}

static void print_counters(const struct counter *table, size_t n) {
    putchar('{');
    for (size_t i = 0; i < n; i++) printf("%s\"%s\": %lld", i ? ", " : "", table[i].name, table[i].n);
    putchar('}');
}

/* The value of a top-level integer key (compact JSON as orjson writes it), or `missing`. */
static int64_t int_field(const unsigned char *p, size_t len, const char *key, int64_t missing) {
    const unsigned char *at = memmem(p, len, key, strlen(key));
    if (at == NULL) return missing;
    at += strlen(key);
    int negative = 0;
    if (at < p + len && *at == '-') negative = 1, at++;
    int64_t v = 0;
    while (at < p + len && *at >= '0' && *at <= '9') v = v * 10 + (*at++ - '0');
    return negative ? -v : v;
}

static void set_state(struct client *c, enum state state) {
    handshaking -= c->state == CONNECTING || c->state == UPGRADING;
    handshaking += state == CONNECTING || state == UPGRADING;
    c->state = state;
}

static void finish(struct client *c, int close_code, int closed_by_server) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    set_state(c, DONE);
    c->live = 0;
    c->settled = 1;
    if (now_wall() < win_end) {
        char code[16];
        if (closed_by_server)
            snprintf(code, sizeof code, "%d", close_code);
        else
            snprintf(code, sizeof code, "None");
        count(closes, &n_closes, MAX_CLOSE_CODES, code, strlen(code));
    }
}

static void fail(struct client *c, const char *why) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    set_state(c, DONE);
    count(failures, &n_failures, 8, why, strlen(why));
    c->settled = 1;
}

static void start_connect(struct client *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->began = now_wall();
    set_state(c, CONNECTING);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        fail(c, "ConnectionRefusedError");
}

static void send_upgrade(struct client *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        fail(c, err == ECONNREFUSED ? "ConnectionRefusedError" : "OSError");
        return;
    }
    unsigned char key[16];
    for (int i = 0; i < 16; i++) key[i] = (unsigned char)rand();
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char key64[25];
    for (int i = 0, o = 0; i < 16; i += 3) {
        unsigned v = (unsigned)key[i] << 16 | (i + 1 < 16 ? (unsigned)key[i + 1] << 8 : 0) |
                     (i + 2 < 16 ? key[i + 2] : 0);
        key64[o++] = b64[v >> 18 & 63];
        key64[o++] = b64[v >> 12 & 63];
        key64[o++] = i + 1 < 16 ? b64[v >> 6 & 63] : '=';
        key64[o++] = i + 2 < 16 ? b64[v & 63] : '=';
    }
    key64[24] = 0;
    char request[1024];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
                     c->path, port, key64, token);
    if (n <= 0 || n >= (int)sizeof request || write(c->fd, request, (size_t)n) != n) {
        fail(c, "OSError");
        return;
    }
    set_state(c, UPGRADING);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void record(struct client *c, const unsigned char *p, size_t len, double now) {
    c->live = c->settled = 1;
    if (now < win_start || now >= win_end) return;
    frames[c - clients]++;
    const unsigned char *type = memmem(p, len, "\"type\":\"", 8);
    size_t type_len = 0;
    if (type != NULL) {
        type += 8;
        const unsigned char *q = memchr(type, '"', len - (size_t)(type - p));
        type_len = q ? (size_t)(q - type) : 0;
    } else {
        type = (const unsigned char *)"?";
        type_len = 1;
    }
    if ((type_len == 4 && memcmp(type, "diff", 4) == 0) || (type_len == 10 && memcmp(type, "bookTicker", 10) == 0)) {
        if (rec_n == rec_cap) {
            rec_cap = rec_cap ? rec_cap * 2 : 1 << 16;
            rec_sym = grow(rec_sym, rec_cap * sizeof *rec_sym);
            rec_u = grow(rec_u, rec_cap * sizeof *rec_u);
            rec_t = grow(rec_t, rec_cap * sizeof *rec_t);
            rec_e = grow(rec_e, rec_cap * sizeof *rec_e);
        }
        rec_sym[rec_n] = c->sym;
        rec_u[rec_n] = int_field(p, len, "\"u\":", -1);
        rec_t[rec_n] = now;
        rec_e[rec_n] = int_field(p, len, "\"E\":", 0);
        rec_n++;
    } else {
        count(kinds, &n_kinds, MAX_KINDS, (const char *)type, type_len);
    }
}

/* Parses whole frames from the client's buffer; returns 0 once the client is finished. */
static int parse_frames(struct client *c, double now) {
    size_t at = 0;
    while (c->len - at >= 2) {
        unsigned char *f = c->buf + at;
        int opcode = f[0] & 0x0F;
        uint64_t length = f[1] & 0x7F;
        size_t head = 2;
        if (length == 126) {
            if (c->len - at < 4) break;
            length = (uint64_t)f[2] << 8 | f[3];
            head = 4;
        } else if (length == 127) {
            if (c->len - at < 10) break;
            length = 0;
            for (int i = 2; i < 10; i++) length = length << 8 | f[i];
            head = 10;
        }
        if (c->len - at - head < length) break;
        unsigned char *payload = f + head;
        at += head + length;
        if (opcode == 0x1) {
            record(c, payload, (size_t)length, now);
        } else if (opcode == 0x9 && length <= 125) { /* ping: a masked pong (key 0) with its payload */
            unsigned char pong[2 + 4 + 125] = {0x8A, (unsigned char)(0x80 | length), 0, 0, 0, 0};
            memcpy(pong + 6, payload, (size_t)length);
            if (write(c->fd, pong, 6 + (size_t)length) < 0) { /* the read side will see the end */
            }
        } else if (opcode == 0x8) {
            finish(c, length >= 2 ? payload[0] << 8 | payload[1] : 1005, 1);
            return 0;
        }
    }
    memmove(c->buf, c->buf + at, c->len - at);
    c->len -= at;
    return 1;
}

static void on_readable(struct client *c) {
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap * 2 + 65536;
            c->buf = grow(c->buf, c->cap);
        }
        ssize_t got = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (got <= 0) {
            if (c->state == UPGRADING)
                fail(c, "ConnectionError");
            else
                finish(c, 0, 0);
            return;
        }
        double now = now_wall();
        c->len += (size_t)got;
        if (c->state == UPGRADING) {
            unsigned char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (end == NULL) continue;
            if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0) {
                fail(c, "ConnectionError");
                return;
            }
            size_t head = (size_t)(end - c->buf) + 4;
            memmove(c->buf, c->buf + head, c->len - head);
            c->len -= head;
            set_state(c, OPEN);
        }
        if (!parse_frames(c, now)) return;
    }
}

static void read_clients(const char *file) {
    FILE *f = fopen(file, "r");
    if (f == NULL) die(file);
    char path[512];
    long long sym;
    size_t cap = 0;
    while (fscanf(f, "%511s %lld", path, &sym) == 2) {
        if (n_clients == cap) {
            cap = cap ? cap * 2 : 256;
            clients = grow(clients, cap * sizeof *clients);
        }
        clients[n_clients++] = (struct client){.fd = -1, .state = WAITING, .sym = sym, .path = strdup(path)};
    }
    fclose(f);
}

/* Starts waiting clients while fewer than CONNECTING_AT_ONCE handshakes are under way, and fails
 * handshakes older than HANDSHAKE_TIMEOUT_S. */
static void pace_connects(size_t *next, double now) {
    if (handshaking == 0 && *next == n_clients) return;
    for (size_t i = 0; i < n_clients; i++) {
        struct client *c = &clients[i];
        if ((c->state == CONNECTING || c->state == UPGRADING) && now - c->began > HANDSHAKE_TIMEOUT_S)
            fail(c, "TimeoutError");
    }
    while (*next < n_clients && handshaking < CONNECTING_AT_ONCE) start_connect(&clients[(*next)++]);
}

static void read_window(void);

/* One turn of the event loop: pace the handshakes, then handle what is readable (or writable, for
 * a connect under way). Once stdin is watched and readable, the window is read first (frames read
 * in the same turn may fall in it), stdin is no longer watched, and the turn returns 1. */
static int step(size_t *next, int timeout_ms) {
    pace_connects(next, now_wall());
    struct epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    int stdin_ready = 0;
    for (int i = 0; i < n; i++) stdin_ready |= events[i].data.ptr == NULL;
    if (stdin_ready) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
        read_window();
    }
    for (int i = 0; i < n; i++) {
        struct client *c = events[i].data.ptr;
        if (c == NULL)
            continue;
        else if (c->state == CONNECTING)
            send_upgrade(c);
        else if (c->state == UPGRADING || c->state == OPEN)
            on_readable(c);
    }
    return stdin_ready;
}

static void read_window(void) {
    char line[256];
    if (fgets(line, sizeof line, stdin) == NULL) {
        fprintf(stderr, "ws_reader: the parent closed stdin\n");
        exit(2);
    }
    double start, end;
    if (sscanf(line, "{\"start\": %lf, \"end\": %lf}", &start, &end) != 2) {
        fprintf(stderr, "ws_reader: not a window line: %s", line);
        exit(2);
    }
    win_start = start;
    win_end = end;
}

static void write_all(FILE *f, const void *p, size_t size) {
    if (size && fwrite(p, 1, size, f) != size) die("write");
}

static void save(const char *file) {
    FILE *f = fopen(file, "wb");
    if (f == NULL) die(file);
    int64_t head[2] = {(int64_t)rec_n, (int64_t)n_clients};
    write_all(f, head, sizeof head);
    write_all(f, rec_sym, rec_n * sizeof *rec_sym);
    write_all(f, rec_u, rec_n * sizeof *rec_u);
    write_all(f, rec_t, rec_n * sizeof *rec_t);
    write_all(f, rec_e, rec_n * sizeof *rec_e);
    write_all(f, frames, n_clients * sizeof *frames);
    if (fclose(f) != 0) die("close");
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: ws_reader PORT TOKEN CLIENTS_FILE CONNECT_TIMEOUT_S OUT_FILE\n");
        return 2;
    }
    port = atoi(argv[1]);
    token = argv[2];
    read_clients(argv[3]);
    double connect_timeout = atof(argv[4]);
    frames = grow(NULL, (n_clients ? n_clients : 1) * sizeof *frames);
    memset(frames, 0, (n_clients ? n_clients : 1) * sizeof *frames);
    srand((unsigned)getpid());
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");

    /* Connect: until every client settled or connect_timeout passed. */
    double deadline = now_wall() + connect_timeout;
    size_t next = 0;
    for (;;) {
        size_t settled = 0;
        for (size_t i = 0; i < n_clients; i++) settled += clients[i].settled;
        if (settled == n_clients || now_wall() >= deadline) break;
        step(&next, 50);
    }
    size_t live = 0;
    for (size_t i = 0; i < n_clients; i++) live += clients[i].live;
    printf("{\"ready\": {\"live\": %zu, \"failed\": ", live);
    print_counters(failures, n_failures);
    printf("}}\n");
    fflush(stdout);

    /* Keep reading while the parent decides the window: the gateway must not back up meanwhile. */
    struct epoll_event stdin_ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &stdin_ev) < 0) die("epoll_ctl stdin");
    while (!step(&next, 100)) {
    }

    for (double now = now_wall(); now < win_end; now = now_wall()) {
        double left_ms = (win_end - now) * 1000.0;
        step(&next, left_ms < 100 ? (int)left_ms + 1 : 100);
    }
    save(argv[5]);
    printf("{\"result\": {\"kinds\": ");
    print_counters(kinds, n_kinds);
    printf(", \"closes\": ");
    print_counters(closes, n_closes);
    printf("}}\n");
    fflush(stdout);
    for (size_t i = 0; i < n_clients; i++)
        if (clients[i].fd >= 0) close(clients[i].fd);
    return 0;
}
