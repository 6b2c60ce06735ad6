/*
 * The foreign-thread wakeup protocol of uringloop (ForeignQueue + the loop's pre-select
 * step), as a Promela model for spin. docs/model/README.md explains it; the test
 * tests/model/test_wakeup_model.py runs it.
 *
 * One loop thread and N foreign threads, each pushing K operations. Every statement of the
 * model is one step of the real code; the `@src` tags name where that step lives, and the
 * test checks with `ast` that each named function (and marker comment) still exists.
 *
 * Variants (spin -D...):
 *   NOWAKE      Loop(foreign_wakeup=False), QEMU's lost-wakeup bug: F3 clears the flag, never writes.
 *   KEEP_FLAG   the code before the re-check fix: a re-check that finds work (L3') and a
 *               prepare_block() that finds completions (L4') leave `_sleeping` set.
 *   NOLOCK      push() checks `closed` and appends without the lock.
 *   ATOMIC_TAS  F2's read and clear of `_sleeping` are one step (CPython's GIL build runs
 *               `if self._sleeping: self._sleeping = False` without a thread switch).
 *   LOCKED      the locked form, for a build without the GIL: push() holds the queue's
 *               lock across F1 and F2, prepare_to_sleep() across L2 and L3.
 *   LEVEL       a level-triggered notifier consumed by a callback (asyncio's self-pipe
 *               under the thread-pool fallback; the ring's eventfd around a selector the
 *               user passed). The default is the ring's eventfd as the loop's own epoll
 *               selector watches it: edge-triggered, its edge consumed by the select()
 *               that returns it.
 *   NO_TIMER    select(timeout) with a finite timeout is not modelled (only 0 and None).
 *   NO_CLOSE    the loop never stops and closes.
 */

#ifndef N
#define N 3             /* foreign threads */
#endif
#ifndef K
#define K 2             /* push() calls per foreign thread */
#endif

#define T_ZERO   0      /* select(0): returns at once */
#define T_FINITE 1      /* select(t): a timer or another fd (eventfd, socket) may end it */
#define T_NONE   2      /* select(None): only the wake notifier can end it (here) */

/* -- shared state of the real code -------------------------------------------------------- */
bit  sleeping;          /* ForeignQueue._sleeping */
bit  pending;           /* ForeignQueue._pending is non-empty (the protocol only tests that) */
bit  closed;            /* ForeignQueue.closed */
bit  lock;              /* ForeignQueue._lock */
bit  pipe;              /* the loop's wake notifier is readable: the ring's eventfd (its
                           counter), or asyncio's self-pipe under the thread-pool fallback;
                           select only tests "readable" and the reader consumes every
                           notification so far, so a bit suffices */

/* -- ghost state: observation only, never read by the protocol -------------------------- */
byte wakers;            /* foreign threads past F1 that may still write the pipe */
bit  select_wait;       /* the loop is inside select() with a nonzero timeout */
bit  window;            /* the loop is between L2 and L5 */
bit  may_block;         /* between L2 and the decision: "will block" (select) or "will not" (L3'/L4') */
bit  bad_flag_read;     /* an F2 saw `_sleeping` set while may_block was false */
bit  stale_write;       /* an F3 write landed outside the L2..L5 window */
bit  writes_in_window;  /* an F2 decided to write since the last L2 */
bit  many_writes;       /* more than one F2 decided to write in one L2..L5 window */

/* (1) safety: never is an op pending while the loop waits in select with no wakeup byte
 *     in the pipe and no foreign thread left that could still write one. A timer does not
 *     count as a wakeup: it would end the wait, but late (QEMU's 499 ms). */
ltl no_lost_wakeup { [] !(select_wait && pending && pipe == 0 && wakers == 0) }
/* (2) liveness (run with weak fairness): a queued op is eventually drained. drain() and
 *     close() take everything, so "pending returns to 0" means every op queued was taken. */
ltl all_drained { [] (pending -> <> !pending) }
/* (3) the optimisation: a foreign thread only decides to write the self-pipe (sees the
 *     flag set at F2) while the loop may still block: after L2 and before the loop has
 *     decided not to block (L3'/L4') or come back from select (L5). */
ltl flag_only_when_may_block { [] !bad_flag_read }
/* (3') NOT guaranteed (documented limit): the write itself can land after L5, because a
 *      thread can be preempted between F2 and F3. Expected to fail in every variant. */
ltl no_write_outside_window { [] !stale_write }
/* (4) one write per sleep: holds only when F2's read+clear is atomic (ATOMIC_TAS). */
ltl one_write_per_sleep { [] !many_writes }

active proctype loop()
{
    byte tmo;           /* the timeout select() will use */
    bit ready;

    do
    :: /* @src uringloop/_loop.py:Loop._pre_select
        * The timeout: asyncio's BaseEventLoop._run_once passes 0 (callbacks ready, or
        * stopping), a timer's delay, or None; driver.flush() turns it into 0 when it reaped
        * completions. The choice is local to the loop, so it is made here, with L1.
        * L1 @src uringloop/_loop.py:Loop._pre_select "foreign.drain()"
        *    @src uringloop/_foreign.py:ForeignQueue.drain "L1"
        * `if foreign._pending:` then drain(): popleft until empty. Foreign threads only
        * append and never read the queue, so this is one atomic "take all". */
       atomic {
          pending = 0;
          if
          :: tmo = T_ZERO
#ifndef NO_TIMER
          :: tmo = T_FINITE
#endif
          :: tmo = T_NONE
          fi
       }

       if
       :: tmo != T_ZERO ->
#ifdef LOCKED
          /* @src uringloop/_foreign.py:ForeignQueue.prepare_to_sleep "with self._lock" */
          atomic { lock == 0 -> lock = 1 };
#endif
          /* L2 @src uringloop/_foreign.py:ForeignQueue.prepare_to_sleep "# L2" */
          atomic {
             sleeping = 1; may_block = 1
#ifdef LIMITS
             ; window = 1; writes_in_window = 0
#endif
          }
          /* L3 @src uringloop/_foreign.py:ForeignQueue.prepare_to_sleep "# L3" */
          if
          :: pending ->
             /* L3' @src uringloop/_foreign.py:ForeignQueue.prepare_to_sleep "# L3'" */
             atomic {
#ifndef KEEP_FLAG
                sleeping = 0;
#endif
                may_block = 0;
                tmo = T_ZERO
             }
#ifdef LOCKED
             ; lock = 0
#endif
          :: else ->
#ifdef LOCKED
             lock = 0;
#endif
             /* L4' @src uringloop/_loop.py:Loop._pre_select "# L4'": prepare_block()
              * found completions meanwhile, so select(0). Else the driver may ask
              * for a short retry delay (backlog): a finite timeout. */
             if
             :: atomic {
#ifndef KEEP_FLAG
                   sleeping = 0;
#endif
                   may_block = 0;
                   tmo = T_ZERO
                }
             :: true -> skip
#ifndef NO_TIMER
             :: tmo == T_NONE -> tmo = T_FINITE
#endif
             fi
          fi
       :: else -> skip
       fi;

       /* L4 @src uringloop/_selector.py:PreSelectEpollSelector.select
        * A stale byte in the pipe makes select return at once; that is allowed.
        * Waiting here forever is a valid end state: no_lost_wakeup judges it. */
       if
       :: tmo == T_ZERO -> skip
       :: atomic { tmo != T_ZERO -> select_wait = 1 }
end_select:
          if
          :: pipe > 0 -> skip
#ifndef NO_TIMER
          :: tmo == T_FINITE -> skip      /* the timer fired or another fd is ready */
#endif
          fi
       fi;
#ifdef LEVEL
       atomic { ready = (pipe > 0); select_wait = 0 }
#else
       /* Edge-triggered (@src uringloop/_selector.py:PreSelectEpollSelector.watch_quietly
        * "_EPOLLET"): the select that returns (any timeout, 0 included) takes the edge;
        * the post-select step, not a callback, acts on it. */
       atomic { ready = (pipe > 0); pipe = 0; select_wait = 0 }
#endif

       /* L5 @src uringloop/_loop.py:Loop._post_select "awake()"
        *    @src uringloop/_foreign.py:ForeignQueue.awake "L5" */
       atomic {
          sleeping = 0; may_block = 0
#ifdef LIMITS
          ; window = 0
#endif
       }
       /* L1' @src uringloop/_loop.py:Loop._post_select "foreign.drain()": back from select,
        * the loop takes what foreign threads queued meanwhile and submits it before the
        * callbacks run (an extra L1, one iteration sooner). Same atomic take-all as L1. */
       if
       :: tmo != T_ZERO -> pending = 0
       :: else -> skip
       fi;

#ifdef LEVEL
       /* Callbacks. If select reported the notifier readable, its reader consumes every
        * notification written so far, including later ones: the eventfd's reader
        * (@src uringloop/_driver.py:RingDriver.on_eventfd "eventfd_read") reads and resets
        * its counter; under the fallback, asyncio's _read_from_self
        * (@std asyncio.selector_events:BaseSelectorEventLoop._read_from_self) reads until
        * EAGAIN. */
       if
       :: ready -> pipe = 0
       :: else -> skip
       fi;
#endif

#ifndef NO_CLOSE
       /* loop.stop(): run_forever returns; then loop.close() closes the queue.
        * @src uringloop/_loop.py:Loop.close "foreign.close()" */
       if
       :: true -> skip
       :: true -> break
       fi
#endif
    od;

#ifndef NO_CLOSE
    /* @src uringloop/_foreign.py:ForeignQueue.close "self.closed = True": under the lock,
     * set closed and take what is pending (those ops fail with LoopClosedError). */
    atomic { lock == 0 -> lock = 1 };
    closed = 1;
    pending = 0;
    lock = 0
#endif
}

active [N] proctype foreign()
{
    byte k = 0;

    do
    :: k < K ->
       /* F1 @src uringloop/_foreign.py:ForeignQueue.push "# F1" */
#ifndef NOLOCK
       atomic { lock == 0 -> lock = 1 };
#endif
       if
       :: closed ->
#ifndef NOLOCK
          lock = 0;
#endif
          break                                /* RuntimeError: the loop is closed */
       :: else -> skip
       fi;
       atomic { pending = 1; wakers++ }         /* self.pending.append(op) */
#if !defined(NOLOCK) && !defined(LOCKED)
       lock = 0;
#endif
       /* F2 @src uringloop/_foreign.py:ForeignQueue.push "# F2" */
       if
       :: atomic {
             sleeping ->
             bad_flag_read = bad_flag_read || !may_block
#ifdef LIMITS
             ; many_writes = many_writes || writes_in_window
             ; writes_in_window = 1
#endif
#ifdef ATOMIC_TAS
             ; sleeping = 0
#endif
          }
#ifndef ATOMIC_TAS
          sleeping = 0;                        /* the first thread that sees it clears it */
#endif
#ifdef LOCKED
          /* @src uringloop/_foreign.py:ForeignQueue._push_locked "# F2": F3 outside the lock */
          lock = 0;
#endif
#ifdef NOWAKE
          /* wakeup_enabled is False: no write. */
          wakers--
#else
          /* F3 @src uringloop/_foreign.py:ForeignQueue.push "# F3": self._wake() is
           * @src uringloop/_loop.py:Loop._wake_for_foreign "driver.wake()", an eventfd
           * write (@src uringloop/_driver.py:RingDriver.wake "eventfd_write"); under the
           * fallback @std asyncio.selector_events:BaseSelectorEventLoop._write_to_self
           * (send one byte; a full pipe is ignored, it is readable anyway). */
          atomic {
             pipe = 1;
#ifdef LIMITS
             stale_write = stale_write || !window;
#endif
             wakers--
          }
#endif
       :: atomic { !sleeping -> wakers-- }   /* the loop is awake: skip the write */
#ifdef LOCKED
          ; lock = 0
#endif
       fi;
       k++
    :: else -> break
    od
}
