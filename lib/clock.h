/*
 * clock.h: the two clocks liveflow reads. Waits, deadlines and intervals use the monotonic
 * clock (it never jumps when the wall clock is set); times that are written down (envelopes,
 * headers, rows) use the wall clock.
 */
#ifndef LIVEFLOW_CLOCK_H
#define LIVEFLOW_CLOCK_H

/** @brief Milliseconds of CLOCK_MONOTONIC: for deadlines and intervals only. */
long long clock_mono_ms(void);

/** @brief Microseconds of CLOCK_MONOTONIC. */
long long clock_mono_us(void);

/** @brief Milliseconds since the epoch (CLOCK_REALTIME): for times that are recorded. */
long long clock_wall_ms(void);

#endif
