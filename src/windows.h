/*-------------------------------------------------------------------------
 *
 * windows.h
 *	  Event-time windows: window functions, window keys, watermarks and
 *	  lateness (see windows.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_WINDOWS_H
#define STREAMPROC_WINDOWS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/hsearch.h"

#include "aggregates.h"

/* Kinds of window (streamproc.views.window_kind). */
#define WINDOW_TUMBLE  't'
#define WINDOW_HOP     'h'
#define WINDOW_SESSION 's'
#define WINDOW_COUNT   'c'

/* Roles of a windowed view's group columns (streamproc.views.window_roles). */
#define WINDOW_ROLE_KEY   0
#define WINDOW_ROLE_START 1
#define WINDOW_ROLE_END   2

/* Bytes of the window prefix of a windowed view's group keys. */
#define WINDOW_KEY_PREFIX 16

/* No watermark yet: nothing is late, no window closes. */
#define WATERMARK_NONE DT_NOBEGIN

/*
 * A windowed view's window, from its catalog row.  Intervals are in
 * microseconds.
 */
typedef struct WindowSpec
{
	char kind;          /* WINDOW_TUMBLE, WINDOW_HOP, WINDOW_SESSION, WINDOW_COUNT */
	int64 size;         /* window size; session: the gap; count: events */
	int64 slide;        /* hop: the slide (state is kept per slide); tumble: size */
	TimestampTz origin; /* tumble, hop: where windows are aligned */
	int64 lateness;     /* allowed_lateness */
	int64 retention;    /* closed windows kept this long; -1: forever */
	char emit;          /* 'u' updates, 'f' final */
} WindowSpec;

extern int64 streamproc_interval_usecs(Interval *interval, const char *what,
									   bool allow_zero);
extern TimestampTz streamproc_window_bin(TimestampTz ts, int64 size,
										 TimestampTz origin);

/* Window keys: big-endian start and end, then the ordinary group key. */
extern void streamproc_window_key_prefix(char *buf, TimestampTz start,
										 TimestampTz end);
extern void streamproc_window_key_decode(const char *key, uint32 keylen,
										 TimestampTz *start, TimestampTz *end);

/* Lateness and closing, from a watermark. */
extern TimestampTz streamproc_window_close_bound(const WindowSpec *spec,
												 TimestampTz watermark);
extern TimestampTz streamproc_window_cutoff(const WindowSpec *spec,
											TimestampTz watermark);

/*
 * Combining the partial states of groups by key, in local memory: the
 * reader builds a view's windows from closed rows and open slices with it
 * (and any view's groups from its checkpoint), the worker the windows it
 * closes.
 */
struct ViewAggs;
typedef struct GroupTable GroupTable;
typedef void (*GroupEmitCallback)(const char *key, uint32 keylen,
								  const char *state, uint32 statelen, void *arg);

extern GroupTable *streamproc_group_table_create(struct ViewAggs *va,
												 MemoryContext cxt);
extern void streamproc_group_table_add(GroupTable *table, const char *key,
									   uint32 keylen, const char *state,
									   uint32 statelen);
extern void streamproc_group_table_add_slice(GroupTable *table,
											 const WindowSpec *spec,
											 const char *key, uint32 keylen,
											 const char *state, uint32 statelen,
											 TimestampTz after,
											 TimestampTz upto);
extern void streamproc_group_table_emit(GroupTable *table,
										GroupEmitCallback cb, void *arg);
extern long streamproc_group_table_count(GroupTable *table);

#endif /* STREAMPROC_WINDOWS_H */
