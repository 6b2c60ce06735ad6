/*
 * QEMU's lost-wakeup bug: Loop(foreign_wakeup=False), i.e. ForeignQueue(wakeup_enabled=False).
 * A foreign thread that finds the loop about to sleep clears the flag (F3) but writes
 * nothing, so an op queued after the loop's re-check (L3) waits until something else wakes
 * select. spin must find a counterexample to no_lost_wakeup and to all_drained.
 * Same model as wakeup.pml; see docs/model/README.md.
 */
#define NOWAKE
#include "wakeup.pml"
