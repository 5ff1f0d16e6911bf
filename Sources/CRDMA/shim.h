// libibverbs and librdmacm: librdmacm's header includes libibverbs' and its
// calls take verbs objects, so the two form one Clang module.
#include <errno.h>
#include <stdint.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

// RDMA FLUSH (IBTA 1.5: ibv_wr_flush, IBV_ACCESS_FLUSH_PERSISTENT, IBV_QP_EX_WITH_FLUSH) came
// with rdma-core 45; Debian 12 has 44. They are enums and inline functions, invisible to the
// preprocessor, so the rdma-core that scripts/build-rdma-core builds carries a header saying
// so, found through its pkg-config include path. Without it the dxr_ FLUSH calls below fail
// with EOPNOTSUPP and nothing offers FLUSH. (Another rdma-core >= 45: -Xcc -DDXR_HAVE_IBV_WR_FLUSH=1.)
// A build against rdma-core < 45 with the macro set fails to compile: it cannot be set by mistake.
// The Makefile passes -DDXR_HAVE_IBV_WR_FLUSH=1 with that rdma-core: Clang's module cache does
// not tell builds apart by include path, so a macro must.
#if !defined(DXR_HAVE_IBV_WR_FLUSH) && __has_include(<daxshare-rdma-core.h>)
#include <daxshare-rdma-core.h>
#endif
#ifndef DXR_HAVE_IBV_WR_FLUSH
#define DXR_HAVE_IBV_WR_FLUSH 0
#endif

/// Whether this build can post RDMA FLUSH at all.
static inline int dxr_have_wr_flush(void) { return DXR_HAVE_IBV_WR_FLUSH; }

/// The opcode daxshare's FLUSH work requests carry in `struct ibv_send_wr` (IBV_WR_FLUSH, 14,
/// in rdma-core >= 45). The legacy `ibv_post_send` has no FLUSH: such a request goes through
/// `dxr_post_send` on a queue pair made by `dxr_create_qp_with_flush`, with its range in
/// `wr.atomic` (remote_addr, rkey, and the length in compare_add).
static inline enum ibv_wr_opcode dxr_wr_flush_opcode(void) { return (enum ibv_wr_opcode)14; }

/// IBV_ACCESS_FLUSH_PERSISTENT (1 << 9), or 0 in a build without FLUSH.
static inline int dxr_access_flush_persistent(void) {
#if DXR_HAVE_IBV_WR_FLUSH
    return IBV_ACCESS_FLUSH_PERSISTENT;
#else
    return 0;
#endif
}

/// The kernel's capability bits rdma-core passes through without naming them
/// (rdma/ib_user_verbs.h): the device places FLUSH to persistence, and on ODP memory.
static inline int dxr_device_flushes_persistent(uint64_t device_cap_flags_ex) {
    return (device_cap_flags_ex & (1ULL << 39)) != 0;  // IB_UVERBS_DEVICE_FLUSH_PERSISTENT
}
static inline int dxr_odp_flush(uint32_t rc_odp_caps) {
    return (rc_odp_caps & (1u << 6)) != 0;  // IB_ODP_SUPPORT_FLUSH
}

/// `rdma_create_qp_ex` with SEND, RDMA WRITE, RDMA READ and FLUSH send operations; returns the
/// extended queue pair (`ibv_qp_to_qp_ex`), or NULL with errno set (EOPNOTSUPP: this rdma-core
/// or provider has no FLUSH; the caller makes a plain queue pair instead).
static inline struct ibv_qp_ex *dxr_create_qp_with_flush(struct rdma_cm_id *id, struct ibv_pd *pd,
                                                        const struct ibv_qp_init_attr *base) {
#if DXR_HAVE_IBV_WR_FLUSH
    struct ibv_qp_init_attr_ex attr = {0};
    attr.send_cq = base->send_cq;
    attr.recv_cq = base->recv_cq;
    attr.qp_type = base->qp_type;
    attr.sq_sig_all = base->sq_sig_all;
    attr.cap = base->cap;
    attr.pd = pd;
    attr.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
    attr.send_ops_flags = IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_READ |
                          IBV_QP_EX_WITH_FLUSH;
    if (rdma_create_qp_ex(id, &attr) != 0) return NULL;
    struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(id->qp);
    if (!qpx) {
        rdma_destroy_qp(id);
        errno = EOPNOTSUPP;
    }
    return qpx;
#else
    (void)id; (void)pd; (void)base;
    errno = EOPNOTSUPP;
    return NULL;
#endif
}

/// Posts a chain of send work requests: `ibv_post_send` on a plain queue pair (`qpx` NULL), the
/// `ibv_wr_*` calls on an extended one, which is all a FLUSH queue pair is ever posted through
/// (the two interfaces are not mixed on one queue pair). Returns 0 or an errno value; on
/// failure nothing of the chain was posted on an extended queue pair (`ibv_wr_complete`).
static inline int dxr_post_send(struct ibv_qp *qp, struct ibv_qp_ex *qpx, struct ibv_send_wr *wr,
                                struct ibv_send_wr **bad) {
#if DXR_HAVE_IBV_WR_FLUSH
    if (qpx) {
        ibv_wr_start(qpx);
        for (struct ibv_send_wr *w = wr; w; w = w->next) {
            qpx->wr_id = w->wr_id;
            qpx->wr_flags = w->send_flags | IBV_SEND_SIGNALED;
            switch ((int)w->opcode) {
            case IBV_WR_SEND:
                ibv_wr_send(qpx);
                break;
            case IBV_WR_RDMA_WRITE:
                ibv_wr_rdma_write(qpx, w->wr.rdma.rkey, w->wr.rdma.remote_addr);
                break;
            case IBV_WR_RDMA_READ:
                ibv_wr_rdma_read(qpx, w->wr.rdma.rkey, w->wr.rdma.remote_addr);
                break;
            case IBV_WR_FLUSH:
                ibv_wr_flush(qpx, w->wr.atomic.rkey, w->wr.atomic.remote_addr, (size_t)w->wr.atomic.compare_add,
                             IBV_FLUSH_PERSISTENT, IBV_FLUSH_RANGE);
                continue;  // no local memory
            default:
                ibv_wr_abort(qpx);
                *bad = w;
                return EINVAL;
            }
            ibv_wr_set_sge_list(qpx, (size_t)w->num_sge, w->sg_list);
        }
        int rc = ibv_wr_complete(qpx);
        if (rc != 0) *bad = wr;
        return rc;
    }
#endif
    if ((int)wr->opcode == 14) {  // FLUSH without FLUSH support
        *bad = wr;
        return EOPNOTSUPP;
    }
    return ibv_post_send(qp, wr, bad);
}
