// libibverbs and librdmacm: librdmacm's header includes libibverbs' and its
// calls take verbs objects, so the two form one Clang module.
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>
