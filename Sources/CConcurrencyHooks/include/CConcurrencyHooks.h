#ifndef CCONCURRENCYHOOKS_H
#define CCONCURRENCYHOOKS_H

// The Swift concurrency runtime's global-executor hooks, as libswift_Concurrency exports them
// (swift/include/swift/Runtime/ConcurrencyHooks.def; swift-nio's "take over" installs the
// same). Each is a SWIFT_CC(swift) function pointer, declared here as the runtime's own
// header declares it: an opaque pointer that Swift fills with a @convention(thin) function.
// Set them before the first task is enqueued on the global executor, and never again.

// Written once, at start-up, before any task: nonisolated(unsafe) says so to Swift 6.
#define DXS_SET_ONCE __attribute__((swift_attr("nonisolated(unsafe)")))

extern void *_Nullable swift_task_enqueueGlobal_hook DXS_SET_ONCE;
extern void *_Nullable swift_task_enqueueGlobalWithDelay_hook DXS_SET_ONCE;
extern void *_Nullable swift_task_enqueueGlobalWithDeadline_hook DXS_SET_ONCE;

#endif
