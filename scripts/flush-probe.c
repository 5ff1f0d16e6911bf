/*
 * flush-probe: does RDMA FLUSH (IBTA 1.5) to persistence work on an ODP-registered
 * MAP_SYNC fsdax mapping, through rdma_cm, on this machine's RDMA device?
 *
 * The smallest reproducer for issue 17. Needs rdma-core >= 45 (ibv_wr_flush); Debian 12 has 44,
 * so build it against scripts/build-rdma-core's prefix:
 *
 *   P=/var/cache/daxshare-testbed/rdma-core-56.1
 *   gcc -O2 -Wall -o /tmp/flush-probe scripts/flush-probe.c -I$P/include -L$P/lib \
 *       -Wl,-rpath,$P/lib -lrdmacm -libverbs -lpthread
 *   scripts/testbed run '/tmp/flush-probe'
 *
 * Usage: flush-probe [ADDR [PMEM_DIR]]   (defaults: $DAXSHARE_TEST_ADDR or 169.254.77.1,
 *                                         $DAXSHARE_PMEM or /mnt/pmem)
 *
 * One process: a server thread owns a 1 MiB file on the fsdax mount, mapped
 * MAP_SHARED_VALIDATE|MAP_SYNC and registered (all with IBV_ACCESS_ON_DEMAND) as four MRs,
 * one per 64 KiB slice: FLUSH_PERSISTENT, FLUSH_GLOBAL, both, and neither. The client (main
 * thread) connects through rdma_cm once per case, with a QP made by rdma_create_qp_ex with
 * IBV_QP_EX_WITH_RDMA_WRITE|IBV_QP_EX_WITH_FLUSH, and posts RDMA WRITE + ibv_wr_flush chains.
 * Every step prints its result; the last line is the verdict.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
/* Kernel uAPI bits rdma-core passes through but does not name (rdma/ib_user_verbs.h). */
#define DEV_FLUSH_GLOBAL (1ULL << 38)
#define DEV_FLUSH_PERSISTENT (1ULL << 39)
#define DEV_ATOMIC_WRITE (1ULL << 40)
#define ODP_SUPPORT_FLUSH (1u << 6)        /* IB_ODP_SUPPORT_FLUSH */
#define ODP_SUPPORT_ATOMIC_WRITE (1u << 7) /* IB_ODP_SUPPORT_ATOMIC_WRITE */

#define PORT 20917
#define SLICE (64 * 1024)
#define FILE_SIZE (16 * SLICE)
#define IO 4096
#define TIMEOUT_MS 20000

enum { MR_P, MR_G, MR_PG, MR_N, NMR };
static const char *mr_name[NMR] = {"FLUSH_PERSISTENT", "FLUSH_GLOBAL", "FLUSH_PERSISTENT|FLUSH_GLOBAL",
                                   "no FLUSH access"};

/* What the server tells the client in the accept's private data. */
struct offer {
    uint64_t addr[NMR];
    uint32_t rkey[NMR];
    uint32_t qp_access;   /* the responder QP's access flags, as ibv_query_qp reports them */
};

/* Cases: each is one connection. */
enum { C_MAIN, C_NOFLUSH_MR, C_GLOBAL_ONLY_MR, C_QP_NO_FLUSH, NCASES };

static const char *addr_str, *pmem_dir;
static uint8_t *map;
static struct ibv_mr *mrs[NMR];
static int mr_ok[NMR];
static sem_t server_ready, case_done;
static int failures;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static const char *access_str(unsigned a)
{
    static char buf[8][160];
    static int n;
    char *b = buf[n++ % 8];
    b[0] = 0;
    if (a & IBV_ACCESS_LOCAL_WRITE) strcat(b, "LOCAL_WRITE|");
    if (a & IBV_ACCESS_REMOTE_WRITE) strcat(b, "REMOTE_WRITE|");
    if (a & IBV_ACCESS_REMOTE_READ) strcat(b, "REMOTE_READ|");
    if (a & IBV_ACCESS_REMOTE_ATOMIC) strcat(b, "REMOTE_ATOMIC|");
    if (a & IBV_ACCESS_ON_DEMAND) strcat(b, "ON_DEMAND|");
    if (a & IBV_ACCESS_FLUSH_GLOBAL) strcat(b, "FLUSH_GLOBAL|");
    if (a & IBV_ACCESS_FLUSH_PERSISTENT) strcat(b, "FLUSH_PERSISTENT|");
    size_t l = strlen(b);
    if (l) b[l - 1] = 0; else strcpy(b, "0");
    sprintf(b + strlen(b), " (0x%x)", a);
    return b;
}

/* Wait for one rdma_cm event of the expected type on ch (bounded). */
static struct rdma_cm_event *get_event(struct rdma_event_channel *ch, enum rdma_cm_event_type want,
                                       const char *who)
{
    struct pollfd p = {.fd = ch->fd, .events = POLLIN};
    int r = poll(&p, 1, TIMEOUT_MS);
    if (r <= 0) {
        say("%s: no rdma_cm event within %d ms (waiting for %s)", who, TIMEOUT_MS, rdma_event_str(want));
        return NULL;
    }
    struct rdma_cm_event *ev;
    if (rdma_get_cm_event(ch, &ev)) {
        say("%s: rdma_get_cm_event: %s", who, strerror(errno));
        return NULL;
    }
    if (ev->event != want) {
        say("%s: got %s (status %d), expected %s", who, rdma_event_str(ev->event), ev->status,
            rdma_event_str(want));
        rdma_ack_cm_event(ev);
        return NULL;
    }
    return ev;
}

/* Print the distinct files in our address space whose path contains needle: which libibverbs,
 * librdmacm and provider the dynamic linker and libibverbs actually picked. */
static void print_loaded(const char *needle)
{
    char line[512], last[512] = "";
    FILE *m = fopen("/proc/self/maps", "r");
    while (m && fgets(line, sizeof line, m)) {
        char *p = strchr(line, '/');
        if (!p || !strstr(p, needle)) continue;
        p[strcspn(p, "\n")] = 0;
        if (strcmp(p, last)) say("  loaded %s", p);
        snprintf(last, sizeof last, "%s", p);
    }
    if (m) fclose(m);
}

/* ------------------------------------------------------------------ server */

static struct ibv_pd *server_pd;

static struct ibv_mr *reg(struct ibv_pd *pd, void *p, size_t len, unsigned access, const char *what)
{
    struct ibv_mr *mr = ibv_reg_mr(pd, p, len, access);
    if (mr)
        say("  reg_mr %-52s access=%s: ok (rkey 0x%x)", what, access_str(access), mr->rkey);
    else
        say("  reg_mr %-52s access=%s: FAILED errno %d (%s)", what, access_str(access), errno,
            strerror(errno));
    return mr;
}

static void *server(void *arg)
{
    struct rdma_cm_id *listen_id = arg;
    struct rdma_event_channel *ch = listen_id->channel;

    for (int c = 0; c < NCASES; c++) {
        struct rdma_cm_event *ev = get_event(ch, RDMA_CM_EVENT_CONNECT_REQUEST, "server");
        if (!ev) break;
        struct rdma_cm_id *id = ev->id;
        int kase = ev->param.conn.private_data_len ? *(const int *)ev->param.conn.private_data : -1;
        rdma_ack_cm_event(ev);

        struct ibv_cq *cq = ibv_create_cq(id->verbs, 16, NULL, NULL, 0);
        struct ibv_qp_init_attr qa = {
            .send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
            .cap = {.max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1, .max_recv_sge = 1},
        };
        if (!cq || rdma_create_qp(id, server_pd, &qa)) {
            say("server: rdma_create_qp: %s", strerror(errno));
            break;
        }
        struct offer o = {0};
        for (int m = 0; m < NMR; m++)
            if (mrs[m]) o.addr[m] = (uintptr_t)mrs[m]->addr, o.rkey[m] = mrs[m]->rkey;
        struct rdma_conn_param cp = {.responder_resources = 1, .initiator_depth = 1,
                                     .private_data = &o, .private_data_len = sizeof o};
        /* rdma_accept moves the QP to RTS with the access flags the kernel's CM picks; the
         * client waits on server_ready before posting, so what we do below comes first. */
        if (rdma_accept(id, &cp)) {
            say("server: rdma_accept: %s", strerror(errno));
            break;
        }
        if (!(ev = get_event(ch, RDMA_CM_EVENT_ESTABLISHED, "server"))) break;
        rdma_ack_cm_event(ev);

        struct ibv_qp_attr at;
        struct ibv_qp_init_attr ia;
        if (ibv_query_qp(id->qp, &at, IBV_QP_ACCESS_FLAGS | IBV_QP_STATE, &ia) == 0)
            say("  server: responder QP after rdma_accept: state %d, qp_access_flags=%s", at.qp_state,
                access_str(at.qp_access_flags));
        else
            say("  server: ibv_query_qp: %s", strerror(errno));
        if (kase == C_QP_NO_FLUSH) {
            struct ibv_qp_attr mod = {.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ};
            int r = ibv_modify_qp(id->qp, &mod, IBV_QP_ACCESS_FLAGS);
            say("  server: ibv_modify_qp(RTS->RTS, qp_access_flags=%s): %s",
                access_str(mod.qp_access_flags), r ? strerror(r) : "ok");
            if (ibv_query_qp(id->qp, &at, IBV_QP_ACCESS_FLAGS, &ia) == 0)
                say("  server: responder QP now: qp_access_flags=%s", access_str(at.qp_access_flags));
        }
        sem_post(&server_ready);

        if ((ev = get_event(ch, RDMA_CM_EVENT_DISCONNECTED, "server")))
            rdma_ack_cm_event(ev);
        rdma_destroy_qp(id);
        ibv_destroy_cq(cq);
        rdma_destroy_id(id);
        sem_post(&case_done);
    }
    return NULL;
}

/* ------------------------------------------------------------------ client */

struct conn {
    int connected;
    struct rdma_event_channel *ch;
    struct rdma_cm_id *id;
    struct ibv_cq *cq;
    struct ibv_qp_ex *qpx;
    struct offer o;
};

static char conn_failure[256] = "connection failed";
static struct ibv_pd *client_pd;
static struct ibv_mr *client_mr;
static uint8_t *client_buf;

static int connect_case(struct conn *cn, int kase)
{
    memset(cn, 0, sizeof *cn);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    inet_pton(AF_INET, addr_str, &sin.sin_addr);
    struct rdma_cm_event *ev;
    cn->ch = rdma_create_event_channel();
    if (!cn->ch || rdma_create_id(cn->ch, &cn->id, NULL, RDMA_PS_TCP)) {
        say("client: rdma_create_id: %s", strerror(errno));
        return -1;
    }
    if (rdma_resolve_addr(cn->id, NULL, (struct sockaddr *)&sin, 2000)) {
        say("client: rdma_resolve_addr: %s", strerror(errno));
        return -1;
    }
    if (!(ev = get_event(cn->ch, RDMA_CM_EVENT_ADDR_RESOLVED, "client"))) return -1;
    rdma_ack_cm_event(ev);
    if (rdma_resolve_route(cn->id, 2000)) {
        say("client: rdma_resolve_route: %s", strerror(errno));
        return -1;
    }
    if (!(ev = get_event(cn->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, "client"))) return -1;
    rdma_ack_cm_event(ev);

    if (!client_pd) {
        client_pd = ibv_alloc_pd(cn->id->verbs);
        client_buf = aligned_alloc(4096, SLICE);
        for (int i = 0; i < SLICE; i++) client_buf[i] = (uint8_t)(i * 7 + 3);
        client_mr = ibv_reg_mr(client_pd, client_buf, SLICE, IBV_ACCESS_LOCAL_WRITE);
        if (!client_mr) {
            say("client: ibv_reg_mr(anonymous buffer): %s", strerror(errno));
            return -1;
        }
    }
    cn->cq = ibv_create_cq(cn->id->verbs, 64, NULL, NULL, 0);
    struct ibv_qp_init_attr_ex qa = {
        .send_cq = cn->cq, .recv_cq = cn->cq, .qp_type = IBV_QPT_RC, .pd = client_pd,
        .cap = {.max_send_wr = 32, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1},
        .comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
        .send_ops_flags = IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_FLUSH,
    };
    if (!cn->cq || rdma_create_qp_ex(cn->id, &qa)) {
        snprintf(conn_failure, sizeof conn_failure,
                 "rdma_create_qp_ex(send_ops_flags=RDMA_WRITE|RDMA_READ|FLUSH) failed: errno %d (%s)%s", errno,
                 strerror(errno), errno == EOPNOTSUPP ? " -- this libibverbs/provider has no FLUSH (rdma-core < 45?)" : "");
        say("client: %s", conn_failure);
        return -1;
    }
    cn->qpx = ibv_qp_to_qp_ex(cn->id->qp);
    if (!cn->qpx) {
        say("client: ibv_qp_to_qp_ex: NULL");
        return -1;
    }
    struct rdma_conn_param cp = {.responder_resources = 1, .initiator_depth = 1, .retry_count = 3,
                                 .rnr_retry_count = 3, .private_data = &kase,
                                 .private_data_len = sizeof kase};
    if (rdma_connect(cn->id, &cp)) {
        say("client: rdma_connect: %s", strerror(errno));
        return -1;
    }
    if (!(ev = get_event(cn->ch, RDMA_CM_EVENT_ESTABLISHED, "client"))) return -1;
    cn->connected = 1;
    if (ev->param.conn.private_data_len >= sizeof cn->o)
        memcpy(&cn->o, ev->param.conn.private_data, sizeof cn->o);
    rdma_ack_cm_event(ev);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += TIMEOUT_MS / 1000;
    if (sem_timedwait(&server_ready, &ts)) {
        say("client: server did not get ready");
        return -1;
    }
    return 0;
}

static void disconnect_case(struct conn *cn)
{
    if (cn->id) {
        if (cn->connected) {
            rdma_disconnect(cn->id);
            struct rdma_cm_event *ev = get_event(cn->ch, RDMA_CM_EVENT_DISCONNECTED, "client");
            if (ev) rdma_ack_cm_event(ev);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += TIMEOUT_MS / 1000;
            sem_timedwait(&case_done, &ts);
        }
        if (cn->id->qp) rdma_destroy_qp(cn->id);
        if (cn->cq) ibv_destroy_cq(cn->cq);
        rdma_destroy_id(cn->id);
    }
    if (cn->ch) rdma_destroy_event_channel(cn->ch);
}

/* Poll n completions; print each; return the number that were not IBV_WC_SUCCESS (-1: timeout). */
static int reap(struct conn *cn, int n, const char *const *names, int quiet)
{
    int bad = 0, got = 0;
    double deadline = now_us() + TIMEOUT_MS * 1000.0;
    while (got < n) {
        struct ibv_wc wc;
        int r = ibv_poll_cq(cn->cq, 1, &wc);
        if (r < 0) {
            say("    ibv_poll_cq: %d", r);
            return -1;
        }
        if (r == 0) {
            if (now_us() > deadline) {
                say("    TIMEOUT: %d of %d completions after %d ms", got, n, TIMEOUT_MS);
                return -1;
            }
            continue;
        }
        got++;
        if (wc.status != IBV_WC_SUCCESS) bad++;
        if (!quiet || wc.status != IBV_WC_SUCCESS)
            say("    wc wr_id=%" PRIu64 " (%s): status %d %s, opcode %d, vendor_err 0x%x", wc.wr_id,
                names ? names[wc.wr_id] : "-", wc.status, ibv_wc_status_str(wc.status), wc.opcode,
                wc.vendor_err);
    }
    return bad;
}

/* Post: optional RDMA WRITE of len bytes to (mr, off), then FLUSH (type, level) of the same range. */
static int write_flush(struct conn *cn, int mr, size_t off, size_t len, int do_write, uint8_t type,
                       uint8_t level, int quiet)
{
    static const char *const names[] = {"-", "RDMA_WRITE", "FLUSH"};
    uint64_t raddr = cn->o.addr[mr] + off;
    uint32_t rkey = cn->o.rkey[mr];
    ibv_wr_start(cn->qpx);
    if (do_write) {
        cn->qpx->wr_id = 1;
        cn->qpx->wr_flags = IBV_SEND_SIGNALED;
        ibv_wr_rdma_write(cn->qpx, rkey, raddr);
        ibv_wr_set_sge(cn->qpx, client_mr->lkey, (uintptr_t)client_buf + off % SLICE, len);
    }
    cn->qpx->wr_id = 2;
    cn->qpx->wr_flags = IBV_SEND_SIGNALED;
    ibv_wr_flush(cn->qpx, rkey, raddr, len, type, level);
    int r = ibv_wr_complete(cn->qpx);
    if (r) {
        say("    ibv_wr_complete: FAILED %d (%s)", r, strerror(r));
        return -1;
    }
    return reap(cn, do_write ? 2 : 1, names, quiet);
}

static int expect(const char *what, int ok)
{
    say("  => %s: %s", what, ok ? "as expected" : "UNEXPECTED");
    if (!ok) failures++;
    return ok;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    addr_str = argc > 1 ? argv[1] : getenv("DAXSHARE_TEST_ADDR") ? getenv("DAXSHARE_TEST_ADDR") : "169.254.77.1";
    pmem_dir = argc > 2 ? argv[2] : getenv("DAXSHARE_PMEM") ? getenv("DAXSHARE_PMEM") : "/mnt/pmem";
    sem_init(&server_ready, 0, 0);
    sem_init(&case_done, 0, 0);

    say("flush-probe: address %s, pmem dir %s", addr_str, pmem_dir);
    print_loaded("libibverbs.so");
    print_loaded("librdmacm.so");

    /* --- device: listen first, so the cm_id is bound to the rxe device. */
    struct rdma_event_channel *sch = rdma_create_event_channel();
    struct rdma_cm_id *listen_id;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    if (!sch || inet_pton(AF_INET, addr_str, &sin.sin_addr) != 1 ||
        rdma_create_id(sch, &listen_id, NULL, RDMA_PS_TCP) ||
        rdma_bind_addr(listen_id, (struct sockaddr *)&sin) || rdma_listen(listen_id, 8) || !listen_id->verbs) {
        say("server: cannot listen on %s:%d: %s", addr_str, PORT, strerror(errno));
        say("VERDICT: FLUSH on ODP fsdax: probe failed before FLUSH (rdma_cm listen: %s)", strerror(errno));
        return 2;
    }
    struct ibv_context *ctx = listen_id->verbs;
    print_loaded("-rdmav");   /* the provider, loaded once a device is opened */
    say("device %s (%s)", ibv_get_device_name(ctx->device), ctx->device->ibdev_path);

    struct ibv_device_attr_ex dx;
    int dev_flush_p = 0, odp_flush = 0;
    if (ibv_query_device_ex(ctx, NULL, &dx)) {
        say("  ibv_query_device_ex: %s", strerror(errno));
    } else {
        uint64_t cf = dx.device_cap_flags_ex;
        dev_flush_p = !!(cf & DEV_FLUSH_PERSISTENT);
        odp_flush = !!(dx.odp_caps.per_transport_caps.rc_odp_caps & ODP_SUPPORT_FLUSH);
        say("  fw %s, device_cap_flags_ex 0x%" PRIx64 ": FLUSH_GLOBAL(bit38)=%d FLUSH_PERSISTENT(bit39)=%d "
            "ATOMIC_WRITE(bit40)=%d", dx.orig_attr.fw_ver, cf, !!(cf & DEV_FLUSH_GLOBAL), dev_flush_p,
            !!(cf & DEV_ATOMIC_WRITE));
        say("  odp_caps: general 0x%" PRIx64 " (ODP=%d), rc 0x%x (WRITE=%d READ=%d FLUSH(bit6)=%d "
            "ATOMIC_WRITE(bit7)=%d)", dx.odp_caps.general_caps, !!(dx.odp_caps.general_caps & IBV_ODP_SUPPORT),
            dx.odp_caps.per_transport_caps.rc_odp_caps,
            !!(dx.odp_caps.per_transport_caps.rc_odp_caps & IBV_ODP_SUPPORT_WRITE),
            !!(dx.odp_caps.per_transport_caps.rc_odp_caps & IBV_ODP_SUPPORT_READ), odp_flush,
            !!(dx.odp_caps.per_transport_caps.rc_odp_caps & ODP_SUPPORT_ATOMIC_WRITE));
        say("  max_qp_rd_atom %d, max_qp_init_rd_atom %d", dx.orig_attr.max_qp_rd_atom,
            dx.orig_attr.max_qp_init_rd_atom);
    }

    /* --- the fsdax file */
    char path[512];
    snprintf(path, sizeof path, "%s/flush-probe-%d", pmem_dir, getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || posix_fallocate(fd, 0, FILE_SIZE)) {
        say("cannot create %s: %s", path, strerror(errno));
        return 2;
    }
    map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
    if (map == MAP_FAILED) {
        say("mmap(MAP_SHARED_VALIDATE|MAP_SYNC) %s: FAILED %s (not an fsdax mount?)", path, strerror(errno));
        say("VERDICT: FLUSH on ODP fsdax: probe failed before FLUSH (no MAP_SYNC mapping: %s)", strerror(errno));
        return 2;
    }
    say("file %s: %d bytes, mmap MAP_SHARED_VALIDATE|MAP_SYNC: ok", path, FILE_SIZE);
    memset(map, 0, FILE_SIZE);   /* fault in every page once from the CPU side */

    server_pd = ibv_alloc_pd(ctx);
    const unsigned base = IBV_ACCESS_ON_DEMAND | IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                          IBV_ACCESS_REMOTE_READ;
    const unsigned extra[NMR] = {IBV_ACCESS_FLUSH_PERSISTENT, IBV_ACCESS_FLUSH_GLOBAL,
                                 IBV_ACCESS_FLUSH_PERSISTENT | IBV_ACCESS_FLUSH_GLOBAL, 0};
    say("registering the fsdax mapping (ODP), one 64 KiB slice per MR:");
    for (int m = 0; m < NMR; m++) {
        char what[96];
        snprintf(what, sizeof what, "fsdax slice %d [%s]", m, mr_name[m]);
        mrs[m] = reg(server_pd, map + m * SLICE, SLICE, base | extra[m], what);
        mr_ok[m] = !!mrs[m];
    }
    say("side probes of registration (not used for I/O):");
    {
        struct ibv_mr *x = reg(server_pd, map + 8 * SLICE, SLICE,
                               (base & ~IBV_ACCESS_ON_DEMAND) | IBV_ACCESS_FLUSH_PERSISTENT,
                               "fsdax, without ON_DEMAND");
        if (x) ibv_dereg_mr(x);
        uint8_t *anon = mmap(NULL, SLICE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memset(anon, 1, SLICE);
        x = reg(server_pd, anon, SLICE, base | IBV_ACCESS_FLUSH_PERSISTENT, "anonymous DRAM, ON_DEMAND");
        if (x) ibv_dereg_mr(x);
        x = reg(server_pd, anon, SLICE, (base & ~IBV_ACCESS_ON_DEMAND) | IBV_ACCESS_FLUSH_PERSISTENT,
                "anonymous DRAM, without ON_DEMAND");
        if (x) ibv_dereg_mr(x);
        munmap(anon, SLICE);
    }
    if (!mr_ok[MR_P]) {
        say("VERDICT: FLUSH on ODP fsdax: does not work: ibv_reg_mr(ON_DEMAND|FLUSH_PERSISTENT) on the "
            "MAP_SYNC fsdax mapping fails");
        return 1;
    }

    pthread_t th;
    pthread_create(&th, NULL, server, listen_id);

    int main_ok = 0;
    const char *main_failure = "not run";
    static char main_fail_buf[256];
    struct conn cn;

    /* --- case 1: the one that matters */
    say("\ncase 1: WRITE + FLUSH(PERSISTENT, RANGE) to the FLUSH_PERSISTENT ODP fsdax MR");
    if (connect_case(&cn, C_MAIN) == 0) {
        say("  client: connected; rdma_create_qp_ex with send_ops_flags RDMA_WRITE|RDMA_READ|FLUSH: ok");
        memset(map + MR_P * SLICE, 0, IO);
        int r = write_flush(&cn, MR_P, 0, IO, 1, IBV_FLUSH_PERSISTENT, IBV_FLUSH_RANGE, 0);
        int same = memcmp(map + MR_P * SLICE, client_buf, IO) == 0;
        say("    server's MAP_SYNC mapping %s the client's %d bytes", same ? "holds" : "does NOT hold", IO);
        main_ok = r == 0 && same;
        if (!main_ok) {
            snprintf(main_fail_buf, sizeof main_fail_buf, "WRITE+FLUSH(PERSISTENT,RANGE) %s",
                     r < 0 ? "timed out or could not be posted" : r > 0 ? "completed with an error (see wc above)"
                                                                 : "completed but the bytes are not in the file");
            main_failure = main_fail_buf;
        }
        expect("WRITE + FLUSH(PERSISTENT) succeeds and the data is in the file", main_ok);

        if (main_ok) {
            say("  FLUSH(PERSISTENT, RANGE) alone, 4 KiB at offset 8 KiB (pages never written by RDMA):");
            expect("succeeds", write_flush(&cn, MR_P, 8192, IO, 0, IBV_FLUSH_PERSISTENT, IBV_FLUSH_RANGE, 0) == 0);
            say("  FLUSH(PERSISTENT, level MR) of the whole MR:");
            expect("succeeds", write_flush(&cn, MR_P, 0, 0, 0, IBV_FLUSH_PERSISTENT, IBV_FLUSH_MR, 0) == 0);
            say("  WRITE + FLUSH(PERSISTENT|GLOBAL, RANGE) to the FLUSH_PERSISTENT|FLUSH_GLOBAL MR:");
            if (mr_ok[MR_PG])
                expect("succeeds", write_flush(&cn, MR_PG, 0, IO, 1, IBV_FLUSH_PERSISTENT | IBV_FLUSH_GLOBAL,
                                               IBV_FLUSH_RANGE, 0) == 0);
            say("  WRITE + FLUSH(GLOBAL, RANGE) to the FLUSH_GLOBAL MR:");
            if (mr_ok[MR_G])
                expect("succeeds", write_flush(&cn, MR_G, 0, IO, 1, IBV_FLUSH_GLOBAL, IBV_FLUSH_RANGE, 0) == 0);

            /* A rough commit cost, same connection: 4 KiB WRITE alone vs WRITE + FLUSH. */
            const int N = 50;
            double t0 = now_us();
            int bad = 0;
            for (int i = 0; i < N; i++) {
                static const char *const names[] = {"-", "RDMA_WRITE"};
                ibv_wr_start(cn.qpx);
                cn.qpx->wr_id = 1;
                cn.qpx->wr_flags = IBV_SEND_SIGNALED;
                ibv_wr_rdma_write(cn.qpx, cn.o.rkey[MR_P], cn.o.addr[MR_P]);
                ibv_wr_set_sge(cn.qpx, client_mr->lkey, (uintptr_t)client_buf, IO);
                bad += ibv_wr_complete(cn.qpx) || reap(&cn, 1, names, 1) != 0;
            }
            double t1 = now_us();
            for (int i = 0; i < N; i++)
                bad += write_flush(&cn, MR_P, 0, IO, 1, IBV_FLUSH_PERSISTENT, IBV_FLUSH_RANGE, 1) != 0;
            double t2 = now_us();
            say("  timing (TCG emulation, indicative only), %d x 4 KiB: WRITE %.0f us/op, WRITE+FLUSH %.0f us/op%s",
                N, (t1 - t0) / N, (t2 - t1) / N, bad ? " (with errors)" : "");
        }
    }
    else {
        say("VERDICT: FLUSH on ODP fsdax: does not work: %s", conn_failure);
        return 1;   /* the server thread still waits for a connection; exiting ends it */
    }
    disconnect_case(&cn);

    /* --- case 2: MR without FLUSH access */
    say("\ncase 2: WRITE + FLUSH(PERSISTENT) to an ODP fsdax MR registered WITHOUT FLUSH access");
    if (connect_case(&cn, C_NOFLUSH_MR) == 0) {
        int r = write_flush(&cn, MR_N, 0, IO, 1, IBV_FLUSH_PERSISTENT, IBV_FLUSH_RANGE, 0);
        expect("the FLUSH fails in the NIC (remote access error)", r > 0);
    }
    disconnect_case(&cn);

    say("\ncase 3: FLUSH(PERSISTENT) to an ODP fsdax MR registered with FLUSH_GLOBAL only");
    memset(&cn, 0, sizeof cn);
    if (mr_ok[MR_G] && connect_case(&cn, C_GLOBAL_ONLY_MR) == 0) {
        int r = write_flush(&cn, MR_G, 0, IO, 0, IBV_FLUSH_PERSISTENT, IBV_FLUSH_RANGE, 0);
        expect("fails (remote access error)", r > 0);
    }
    disconnect_case(&cn);

    say("\ncase 4: WRITE + FLUSH(PERSISTENT) to the FLUSH_PERSISTENT MR, responder QP without FLUSH access");
    if (connect_case(&cn, C_QP_NO_FLUSH) == 0) {
        int r = write_flush(&cn, MR_P, 0, IO, 1, IBV_FLUSH_PERSISTENT, IBV_FLUSH_RANGE, 0);
        expect("the WRITE succeeds and the FLUSH fails (invalid request)", r == 1);
    }
    disconnect_case(&cn);

    pthread_join(th, NULL);
    for (int m = 0; m < NMR; m++)
        if (mrs[m]) ibv_dereg_mr(mrs[m]);
    munmap(map, FILE_SIZE);
    close(fd);
    unlink(path);
    rdma_destroy_id(listen_id);
    rdma_destroy_event_channel(sch);

    say("\nsummary: device FLUSH_PERSISTENT cap %d, RC ODP FLUSH cap %d, %d unexpected result(s)",
        dev_flush_p, odp_flush, failures);
    if (main_ok)
        say("VERDICT: FLUSH on ODP fsdax: works");
    else
        say("VERDICT: FLUSH on ODP fsdax: does not work: %s", main_failure);
    return main_ok ? (failures ? 3 : 0) : 1;
}
