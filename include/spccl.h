/* SPDX-License-Identifier: Apache-2.0
 *
 * spccl: compressed collectives for data-parallel training.
 *
 * The public C API. C99, no CUDA or MPI header needed: streams are `struct CUstream_st*`
 * (exactly what cudaStream_t is), communicators come from spccl_mpi.h or spccl_nccl.h.
 * Every function returns spcclResult_t; on failure spcclGetLastError() says why.
 * Nothing here calls exit or abort, and nothing prints unless SPCCL_DEBUG asks for it.
 */
#ifndef SPCCL_H_
#define SPCCL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPCCL_MAJOR 0
#define SPCCL_MINOR 1
#define SPCCL_PATCH 0
#define SPCCL_VERSION(X, Y, Z) ((X) * 10000 + (Y) * 100 + (Z))
#define SPCCL_VERSION_CODE SPCCL_VERSION(SPCCL_MAJOR, SPCCL_MINOR, SPCCL_PATCH)

typedef struct spcclComm* spcclComm_t;
typedef struct spcclState* spcclState_t;
typedef struct CUstream_st* spcclStream_t;

/* Same values and meanings as ncclResult_t. */
typedef enum {
  spcclSuccess = 0,
  spcclUnhandledCudaError = 1,
  spcclSystemError = 2,
  spcclInternalError = 3,
  spcclInvalidArgument = 4,
  spcclInvalidUsage = 5,
  spcclRemoteError = 6,
  spcclInProgress = 7,
  spcclTimeout = 8,
  spcclNumResults = 9
} spcclResult_t;

/* NCCL's numbers, so a cast to ncclDataType_t is the identity. 0..5 are NCCL's integer
 * types, which spccl does not reduce: they are rejected with spcclInvalidArgument. */
typedef enum {
  spcclFloat16 = 6,
  spcclFloat32 = 7,
  spcclFloat64 = 8,
  spcclBfloat16 = 9,
  spcclNumTypes = 10,
  spcclDataTypeMaxEnum = 0x7fffffff /* any int is a valid value to pass (and to reject) */
} spcclDataType_t;

/* NCCL's numbers. Half types accumulate in fp32. */
typedef enum { spcclSum = 0, spcclAvg = 4, spcclNumOps = 5, spcclRedOpMaxEnum = 0x7fffffff } spcclRedOp_t;

typedef enum {
  spcclMethodDense = 0,
  spcclMethodRandomBlock = 1,
  spcclMethodTopK = 2,
  spcclMethodGaussianK = 3,
  spcclMethodGTopK = 4,
  spcclMethodOneBit = 5,
  spcclMethodQTopK = 6,
  spcclNumMethods = 7
} spcclMethod_t;

typedef enum { spcclBlocksContiguous = 0, spcclBlocksScattered = 1, spcclNumBlockPatterns = 2 } spcclBlockPattern_t;
typedef enum { spcclFeedbackNone = 0, spcclFeedbackEF = 1, spcclNumFeedbacks = 2 } spcclFeedback_t;

/* Padding index of an unused (index, value) slot in top-k payloads; receivers skip it. */
#define SPCCL_PAD_INDEX 0xFFFFFFFFu

/* --------------------------------------------------------------------------------------
 * Configuration. Like ncclConfig_t: initialise with SPCCL_CONFIG_INITIALIZER, then set the
 * fields you care about. Fields left at their "undefined" sentinel are resolved inside the
 * library, from SPCCL_<FIELD> environment variables or the defaults below; a struct that
 * was not initialised (wrong size, magic or version) is rejected.
 *   method        spcclMethodRandomBlock       SPCCL_METHOD (dense|randomblock|topk|gaussiank|gtopk|onebit|qtopk)
 *   density       1/64                         SPCCL_DENSITY
 *   blockSize     256 elements                 SPCCL_BLOCK_SIZE
 *   blockPattern  spcclBlocksContiguous        SPCCL_BLOCK_PATTERN (contiguous|scattered)
 *   feedback      spcclFeedbackEF              SPCCL_FEEDBACK (none|ef)
 *   seed          0x5bcc1                      SPCCL_SEED
 *   tensorKey     0
 *   denseSwitch   1 (allowed)                  SPCCL_DENSE_SWITCH
 *   pipeline      0                            SPCCL_PIPELINE
 *   hierarchical  on when the comm spans >1 host SPCCL_HIERARCHICAL (0|1)
 *                 and some host has >1 rank
 *   valueBits     2                            SPCCL_VALUE_BITS (2..8)
 *   autoSelect    0                            SPCCL_AUTO (0|1)
 * ------------------------------------------------------------------------------------ */
#define SPCCL_CONFIG_MAGIC 0x5bcc1c0fu
#define SPCCL_CONFIG_UNDEF_INT (-2147483647 - 1)
#define SPCCL_CONFIG_UNDEF_DOUBLE (-1.0e300)
#define SPCCL_CONFIG_UNDEF_U64 (~0ull)

typedef struct {
  size_t size;         /* sizeof(spcclConfig_t), set by the initializer */
  unsigned int magic;  /* SPCCL_CONFIG_MAGIC */
  unsigned int version;/* SPCCL_VERSION_CODE of the header the caller compiled against */
  int method;          /* spcclMethod_t */
  double density;      /* fraction of elements (top-k) or blocks (random block) sent, (0, 1] */
  int blockSize;       /* elements per block (random block), >= 1; a block larger than the
                          tensor is clamped to its count (spcclStateGetConfig shows it) */
  int blockPattern;    /* spcclBlockPattern_t */
  int feedback;        /* spcclFeedback_t */
  unsigned long long seed;      /* shared by all ranks; ~0 is the "unset" sentinel (default/env) */
  unsigned long long tensorKey; /* distinguishes tensors that share a seed */
  int denseSwitch;     /* 1: run dense when the sparse payload would cost more (logged at INFO) */
  int pipeline;        /* 1: overlap the residual/output pass with the reduction (host path); the
                          state then double-buffers the residual, so the pointer that
                          spcclStateGetResidual returns is valid until the next call on the state */
  int hierarchical;    /* 1: dense reduce-scatter inside each host, the method on each rank's shard
                          across hosts (ranks of the same local rank), dense allgather inside the
                          host; the residual is kept per shard. Host buffers on MPI comms whose
                          hosts have equal numbers of ranks. 0: flat. */
  int valueBits;       /* qtopk: bits per sent value, 2..8 (levels -(2^(b-1)-1) .. 2^(b-1)-1 times a
                          power-of-two scale per block); the other methods ignore it */
  int autoSelect;      /* 1: the state times its first 7 calls (the method untimed, then dense and
                          the method in turn), sums every rank's timings over the comm, and from then on
                          runs whichever was faster, the same on every rank (docs/DESIGN.md,
                          "Choosing per call: auto"). A dense call sends g + e and empties the
                          residual, so feedback stays exact across the switch; spcclStateGetInfo's
                          denseSwitched says what the next call runs. Logged at INFO with the
                          reason. Acts on host states of a comm of several ranks that moves its own
                          payload, for methods whose feedback is their residual (not 1-bit); the
                          others keep their method, logged. 0: always the method. */
} spcclConfig_t;

#define SPCCL_CONFIG_INITIALIZER                                                            \
  {                                                                                         \
    sizeof(spcclConfig_t), SPCCL_CONFIG_MAGIC, SPCCL_VERSION_CODE, SPCCL_CONFIG_UNDEF_INT, \
        SPCCL_CONFIG_UNDEF_DOUBLE, SPCCL_CONFIG_UNDEF_INT, SPCCL_CONFIG_UNDEF_INT,          \
        SPCCL_CONFIG_UNDEF_INT, SPCCL_CONFIG_UNDEF_U64, 0ull, SPCCL_CONFIG_UNDEF_INT,       \
        SPCCL_CONFIG_UNDEF_INT, SPCCL_CONFIG_UNDEF_INT, SPCCL_CONFIG_UNDEF_INT,             \
        SPCCL_CONFIG_UNDEF_INT                                                              \
  }

/* ---------------------------------- Library and errors ------------------------------- */

/* Writes SPCCL_VERSION_CODE of the library (which may differ from the header's). */
spcclResult_t spcclGetVersion(int* version);

/* A short name for a result code ("invalid argument"); never NULL. */
const char* spcclGetErrorString(spcclResult_t result);

/* The sentence that explains the last failure, e.g. "spcclStateCreate : density 1.5 is
 * outside (0, 1]". Kept whatever SPCCL_DEBUG is. comm may be NULL (failures inside
 * spcclCommInit* happen before a comm exists); the text is per thread. */
const char* spcclGetLastError(spcclComm_t comm);

/* ------------------------------------ Communicators ---------------------------------- */
/* Created by spcclCommInitMPI (spccl_mpi.h), spcclCommInitNccl / spcclCommInitRank
 * (spccl_nccl.h), or spcclCommInitLocal below. Local queries, no communication. */

/* A compress-only comm: rank `rank` of `nranks`, no transport. States on it work with
 * spcclCompress / spcclDecompress (and the state calls) while the caller moves the payloads
 * through its own collectives (a PyTorch process group, Horovod); every collective on it
 * returns spcclInvalidUsage. device: -1 for host buffers, else the CUDA device whose buffers
 * the states take, which must be the calling thread's current device (spcclInvalidUsage in a
 * build without CUDA). Local, needs no MPI. */
spcclResult_t spcclCommInitLocal(spcclComm_t* comm, int nranks, int rank, int device);

spcclResult_t spcclCommCount(const spcclComm_t comm, int* count);
spcclResult_t spcclCommUserRank(const spcclComm_t comm, int* rank);

/* Frees the comm; the underlying MPI or NCCL communicator stays the caller's. States created
 * on the comm must be destroyed first. Local. */
spcclResult_t spcclCommDestroy(spcclComm_t comm);

/* Frees the comm without waiting for operations in flight (after spcclTimeout, or to give up
 * on peers). States still on the comm stay valid only for spcclStateDestroy. On an NCCL comm
 * it calls ncclCommAbort, which also frees a wrapped ncclComm_t (the only way to stop
 * operations spccl enqueued on it). Local. */
spcclResult_t spcclCommAbort(spcclComm_t comm);

/* The error that broke the comm, or spcclSuccess: a collective that timed out
 * (SPCCL_TIMEOUT_MS) or failed in the transport leaves the comm broken, and later
 * collectives on it return spcclInvalidUsage until it is aborted or destroyed. On an NCCL
 * comm, NCCL's asynchronous error (ncclCommGetAsyncError) is reported too, including
 * spcclInProgress while a nonblocking NCCL comm is still enqueueing (not an error: spccl's own
 * calls wait for it, bounded by SPCCL_TIMEOUT_MS). Local, never blocks. */
spcclResult_t spcclCommGetAsyncError(spcclComm_t comm, spcclResult_t* asyncError);

/* ------------------------------- Dense pass-through ---------------------------------- */
/* NCCL's argument order. On an MPI comm: host buffers, stream NULL, blocking, in-place
 * (sendbuff == recvbuff) allowed. fp16/bf16 are reduced in fp32 and rounded once per hop. */
spcclResult_t spcclAllReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                             spcclRedOp_t op, spcclComm_t comm, spcclStream_t stream);
/* recvbuff holds nranks * sendcount elements, rank r's at offset r * sendcount. */
spcclResult_t spcclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, spcclDataType_t datatype,
                             spcclComm_t comm, spcclStream_t stream);
spcclResult_t spcclBroadcast(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype, int root,
                             spcclComm_t comm, spcclStream_t stream);
/* sendbuff holds nranks * recvcount elements; rank r receives the reduction of block r. */
spcclResult_t spcclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, spcclDataType_t datatype,
                                 spcclRedOp_t op, spcclComm_t comm, spcclStream_t stream);

/* --------------------------------- Per-tensor state ---------------------------------- */
/* Allocates the error-feedback residual (zeroed) and every workspace the method needs,
 * where the comm's buffers live (host for MPI, device for NCCL), so later calls never
 * allocate. Local: all ranks must pass the same config, count and datatype. */
spcclResult_t spcclStateCreate(spcclState_t* state, spcclComm_t comm, const spcclConfig_t* config, size_t count,
                               spcclDataType_t datatype);
spcclResult_t spcclStateDestroy(spcclState_t state);
/* residual = 0, step = 0. */
spcclResult_t spcclStateReset(spcclState_t state);
/* The state's feedback memory: spcclStateGetResidualCount elements of the state's datatype,
 * in the same memory kind as the buffers; valid until the state is destroyed (with
 * config.pipeline: until the next call). Its first count elements are the worker residual,
 * position for position with the tensor; 1-bit keeps its server residual (the feedback of
 * this rank's chunk, ceil(count/nranks) elements) after them. A checkpoint saves all of it. */
spcclResult_t spcclStateGetResidual(spcclState_t state, void** residual);
/* Elements of the feedback memory spcclStateGetResidual points to and spcclStateSetResidual
 * restores: count, plus ceil(count/nranks) for 1-bit. */
spcclResult_t spcclStateGetResidualCount(spcclState_t state, size_t* count);
/* The step the next spcclSparseAllReduce / spcclCompress will use. */
spcclResult_t spcclStateGetStep(spcclState_t state, unsigned long long* step);
/* Restoring a checkpoint: the step the next call uses (every rank must restore the same
 * one), and the whole feedback memory, copied from `residual` (count must be
 * spcclStateGetResidualCount's and datatype the state's; the same memory kind as the state's
 * buffers; on a device state the copy is ordered on `stream` and complete when the call
 * returns). A state with feedback none keeps no residual and refuses one
 * (spcclInvalidUsage). A hierarchical state whose method runs on shards (the Top-k family)
 * keeps feedback for this rank's shard only and refuses a residual that is not zero elsewhere
 * (spcclInvalidArgument). On failure the state is unchanged. Local. */
spcclResult_t spcclStateSetStep(spcclState_t state, unsigned long long step);
spcclResult_t spcclStateSetResidual(spcclState_t state, const void* residual, size_t count, spcclDataType_t datatype,
                                    spcclStream_t stream);
/* Bytes of memory the state holds for its tensor: the residual plus every workspace buffer
 * (what compression costs in memory, beyond the gradient itself). */
spcclResult_t spcclStateGetMemoryFootprint(spcclState_t state, size_t* bytes);
/* The resolved configuration (no undefined fields left). */
spcclResult_t spcclStateGetConfig(spcclState_t state, spcclConfig_t* config);

/* The name of a method ("topk"): the spelling SPCCL_METHOD, the perf binary's -m and the
 * Python binding accept. NULL for a value that names no method, so a caller can list them
 * all by counting up from 0. */
const char* spcclMethodName(int method);

/* How a method's payload travels between ranks: the one fact an adapter that moves payloads
 * itself (spcclCompress, its own collective, spcclDecompress) needs to pick its collective. */
typedef enum {
  spcclPayloadValues = 0, /* values on positions every rank knows: one allreduce of the packed values
                             (dense, random block) */
  spcclPayloadSlots = 1,  /* (index, value) slots, a fixed number per rank: one allgather, then every
                             rank scatter-adds all of them (Top-k, Gaussian-k) */
  spcclPayloadRounds = 2, /* rounds of its own (gTop-k's merge tree, 1-bit's two levels): only
                             spcclSparseAllReduce on a spccl comm runs it */
  spcclNumPayloads = 3
} spcclPayload_t;

/* The name of a payload kind ("values", "slots", "rounds"), NULL for a value that names none. */
const char* spcclPayloadName(int payload);
/* The payload kind of a method, without a state (spcclInvalidArgument for a value that names no
 * method). */
spcclResult_t spcclMethodGetPayload(int method, int* payload);

/* What the state does per spcclSparseAllReduce, as its method's table entry sized it at
 * creation. Versioned like spcclConfig_t: initialise it with SPCCL_STATE_INFO_INITIALIZER, and
 * the library fills the fields the caller's header knows (size) and refuses a struct without
 * the magic (a caller built against a header older than the size field). All byte counts
 * saturate at SIZE_MAX instead of wrapping. */
#define SPCCL_STATE_INFO_MAGIC 0x5bcc11f0u
typedef struct {
  size_t size;               /* sizeof(spcclStateInfo_t), set by the initializer */
  unsigned int magic;        /* SPCCL_STATE_INFO_MAGIC */
  unsigned int version;      /* SPCCL_VERSION_CODE of the caller's header */
  int method;                /* spcclMethod_t */
  size_t count;              /* elements of the tensor */
  size_t selected;           /* elements each rank contributes: m*blockSize (random block), k (top-k
                                family), count (dense, and 1-bit, which sends every sign) */
  size_t wireBytes;          /* bytes this rank sends per spcclSparseAllReduce, as the algorithm the
                                call runs moves them (a ring allreduce sends 2(P-1)/P of its buffer);
                                hierarchical: both levels */
  size_t denseWireBytes;     /* what a dense ring allreduce of the tensor sends per rank */
  int denseSwitched;         /* 1: the sparse payload would cost more, so the collective runs dense */
  size_t memoryBytes;        /* spcclStateGetMemoryFootprint */
  /* The method's table entry: its payload and its cost terms (docs/DESIGN.md). */
  int payload;               /* spcclPayload_t */
  size_t methodWireBytes;    /* what the method's own payload sends per rank over the comm, whatever
                                the collective chose (what an adapter's exchange of spcclCompress's
                                payload by `payload`'s collective sends) */
  size_t wireIntraHostBytes; /* of wireBytes: to ranks of this rank's host */
  size_t wireInterHostBytes; /* of wireBytes: to other hosts */
  size_t rounds;             /* message rounds per call, each paying the link latency once */
  double memoryPasses;       /* passes over count elements that the compute makes per call (each pass
                                reads or writes count elements once), beyond the transport's */
  double selectPasses;       /* selection work, in passes over count elements (compare-heavy) */
} spcclStateInfo_t;
#define SPCCL_STATE_INFO_INITIALIZER {sizeof(spcclStateInfo_t), SPCCL_STATE_INFO_MAGIC, SPCCL_VERSION_CODE}
spcclResult_t spcclStateGetInfo(spcclState_t state, spcclStateInfo_t* info);

/* ------------------------------ The compressed collective ---------------------------- */
/* recvbuff[i] = sum (or average) over ranks of each rank's compressed contribution
 * c = C(sendbuff + residual); zero where no rank sent anything. The residual becomes
 * (sendbuff + residual) - c and the step advances by one. In-place allowed.
 * count, datatype and comm must be those the state was created with.
 * MPI comm: host buffers, blocking. On failure residual and step are unchanged. */
spcclResult_t spcclSparseAllReduce(const void* sendbuff, void* recvbuff, size_t count, spcclDataType_t datatype,
                                   spcclRedOp_t op, spcclState_t state, spcclComm_t comm, spcclStream_t stream);

/* ------------------------- Compression without communication ------------------------- */
/* The capacity of the values (and indices) arrays spcclCompress writes. */
spcclResult_t spcclCompressedCount(spcclState_t state, size_t* nvalues);

/* Applies feedback, writes this rank's contribution, updates the residual, advances the
 * step and writes the step it used to *step. Random block: values only (indices may be
 * NULL), the selected blocks back to back, the same shape on every rank. Top-k methods:
 * values and 32-bit indices, padded slots carry SPCCL_PAD_INDEX. Buffers are device memory
 * on a device comm; indices, when given, are 4-byte aligned. Local, blocking on host. A CUDA
 * graph that captures spcclCompress replays the captured step's blocks (the step is taken on
 * the host and written to *step once) for random block, whose spcclSparseAllReduce replays
 * step on. */
spcclResult_t spcclCompress(const void* sendbuff, void* values, uint32_t* indices, size_t* nvalues,
                            unsigned long long* step, spcclState_t state, spcclStream_t stream);

/* recvbuff[count] = scale * (the given contributions), zero elsewhere. scale must be a finite
 * number of the accumulation type (fp64 for spcclFloat64, fp32 otherwise): Inf, NaN or 1e300
 * on a float state are spcclInvalidArgument; the dense method takes scale 1 only. Random block: values
 * are the packed blocks of `step` (indices unused). Top-k methods: nvalues pairs, possibly
 * several ranks' back to back; repeated indices add up; SPCCL_PAD_INDEX is skipped; any other
 * index >= count is spcclRemoteError and nothing is written (on a device comm such pairs are
 * dropped, and the state's next call returns spcclRemoteError). Values are aligned to their
 * type, indices to 4 bytes, both device memory on a device comm. Local, blocking on host. */
spcclResult_t spcclDecompress(const void* values, const uint32_t* indices, size_t nvalues, unsigned long long step,
                              double scale, void* recvbuff, spcclState_t state, spcclStream_t stream);

/* The block indices, in packed-slot order (a wrapping run for CONTIGUOUS), that every rank
 * chooses at `step`. blocks has room for *nblocks on entry (may be NULL to query); *nblocks
 * receives the number chosen. */
spcclResult_t spcclBlockSelection(spcclState_t state, unsigned long long step, size_t* blocks, size_t* nblocks);

#ifdef __cplusplus
}
#endif

#endif /* SPCCL_H_ */
