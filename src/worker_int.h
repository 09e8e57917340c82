/*-------------------------------------------------------------------------
 *
 * worker_int.h
 *	  What the ingest worker's files share: worker.c (batches, checkpoints,
 *	  recovery) and window_worker.c (watermarks, windows).  Not for use
 *	  elsewhere: everything here belongs to the one worker process.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_WORKER_INT_H
#define STREAMPROC_WORKER_INT_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/dshash.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"

#include "aggregates.h"
#include "kafka.h"
#include "state.h"
#include "windows.h"

/* A continuous view as the worker runs it. */
typedef struct WView
{
	Oid viewid;
	char *name;
	char kind; /* 'a' aggregating, 'p' append */
	Oid owner;
	SPIPlanPtr batch_plan;  /* 'a': partial states of a batch; 'p': INSERT */
	SPIPlanPtr event_plan;  /* the same for one log row */
	SPIPlanPtr source_plan; /* the same for the rows of a Kafka batch */
	int ngroup;
	FmgrInfo *group_send; /* send function of each group column */
	Oid *group_types;     /* type of each group column */
	int nagg;
	StreamprocAggInfo **aggs;
	ViewShared *shared;      /* 'a': registry entry (stable address) */
	dshash_table *groups;    /* 'a': attached group table */
	HTAB *dirty;             /* 'a': keys changed since the checkpoint */
	MemoryContext dirty_cxt; /* 'a': holds dirty and its keys */
	bool rewrite_slots;      /* 'a': checkpoint must fold other slots' rows */
	int64 events;            /* since the last statistics update */
	int64 appended;          /* 'p': rows of the last INSERT */
	int64 new_groups;
	int64 memory;
	int64 errors;

	/* Windowed views (windows.c); window.kind is 0 for the others. */
	WindowSpec window;
	int key_first;           /* batch column of the first ordinary group key */
	TimestampTz closed;      /* watermark our slot last closed windows at */
	TimestampTz cutoff;      /* events before it are late (from closed) */
	TimestampTz min_end;     /* no window of our slot closes before this */
	SPIPlanPtr late_plan;    /* INSERT into late_events, or NULL */
	char *late_error;        /* late_events is set but does not fit: why */
	MemoryContext late_cxt;  /* late events kept until the checkpoint */
	SourceRows late;         /* ... their rows */
	TimestampTz *late_marks; /* ... and the watermark each was late at */
	int late_cap;
	int64 late_count;               /* late events since the statistics update */
	HTAB *sessions;                 /* session views: our open sessions per group */
	StreamprocAggInfo *first_event; /* session views: min(ts), max(ts) of a bin */
	StreamprocAggInfo *last_event;
	HTAB *counters;           /* count-window views: our current window per group */
	TimestampTz closing_mark; /* the checkpoint in progress closes at this */
	List *closing_removed;    /* ... and removes these (DirtyKey *, worker_batch_cxt) */
} WView;

/* A stream this worker owns. */
typedef struct WStream
{
	Oid streamid;
	char *name;
	char *logname; /* quoted, schema-qualified */
	SPIPlanPtr count_plan;
	SPIPlanPtr rows_plan; /* ctid and event text of a batch's rows */
	SPIPlanPtr delete_plan;
	SPIPlanPtr unconsumed_plan; /* is any row not yet consumed? */
	Oid logid;
	bool vacuum_needed;        /* the last checkpoint deleted rows */
	Datum last_snapshot;       /* pg_snapshot of the last batch, or 0 */
	List *views;               /* WView * */
	bool owns_log;             /* false: only Kafka sources of it are ours */
	bool has_append;           /* it has append-only views */
	TupleDesc desc;            /* the stream's columns */
	List *sources;             /* KafkaSource * feeding it */
	MemoryContext pending_cxt; /* Kafka rows for append views, until the checkpoint */
	SourceRows pending;
	int pending_cap;
	int32 *pending_partitions; /* position of each pending row */
	int64 *pending_offsets;
	KafkaSource **pending_sources;

	/* Event time, when the stream has windowed views (windows.c). */
	AttrNumber event_time; /* 0: no windowed view */
	int64 watermark_delay;
	int64 idle_timeout;         /* -1: inputs never go idle */
	TimestampTz log_max_time;   /* greatest event time read from the log */
	TimestampTz log_last_event; /* when the log last had events, 0: never */
	SPIPlanPtr late_rows_plan;  /* log rows of a batch before a cutoff */
} WStream;

/* A key of WView.dirty. */
typedef struct DirtyKey
{
	uint32 len;
	char *bytes;
} DirtyKey;

/* A group state computed in a subtransaction, stored after it commits. */
typedef struct PendingState
{
	char *key;
	uint32 keylen;
	bytea *state; /* NULL: remove the group from our slot (merged session) */
} PendingState;

/* Session views: the open sessions of one group in our slot. */
typedef struct SessionGroup
{
	DirtyKey key; /* the group key without its window prefix */
	List *spans;  /* SessionSpan * */
} SessionGroup;

typedef struct SessionSpan
{
	TimestampTz start;
	TimestampTz end;
} SessionSpan;

/*
 * A row of a session or count-window view's batch query (a session
 * [start, end); an event numbered start), or an open session of our slot.
 */
typedef struct WindowPiece
{
	char *gkey; /* group key without the window prefix */
	uint32 glen;
	TimestampTz start;
	TimestampTz end;
	bytea *state;  /* NULL: an open session's, fetched when merged */
	bool existing; /* an open session of our slot */
} WindowPiece;

/* Count-window views: the current window of one group in our slot. */
typedef struct CountGroup
{
	DirtyKey key; /* the group key without its window prefix */
	int64 id;     /* its window id */
	int64 count;  /* events in it */
} CountGroup;

/* Pending Kafka rows (or late events) that force an early checkpoint. */
#define PENDING_ROWS_CHECKPOINT 100000

/* The worker's state (worker.c). */
extern int worker_index;                       /* our slot */
extern MemoryContext worker_batch_cxt;         /* reset after every batch */
extern bool worker_checkpoint_needed;          /* batches merged since the last one */
extern bool worker_checkpoint_soon;            /* rows kept in memory pile up */
extern MemoryContext worker_dirty_key_cxt;     /* where worker_dirty_keycopy allocates */
extern int64 worker_state_rows_written;        /* view_state rows since its last vacuum */
extern rd_kafka_message_t **worker_kafka_msgs; /* the Kafka batch being processed */

/* worker.c */
extern void worker_serialize_key(WView *view, HeapTuple tuple, TupleDesc desc, StringInfo buf);
extern bytea *worker_row_states(WView *view, HeapTuple tup, TupleDesc desc);
extern uint32 worker_dirty_hash(const void *key, Size keysize);
extern int worker_dirty_match(const void *key1, const void *key2, Size keysize);
extern void *worker_dirty_keycopy(void *dest, const void *src, Size keysize);
extern SPIPlanPtr worker_prepare_or_die(const char *sql, int nargs, Oid *argtypes);
extern bool worker_run_in_subxact(WView *view, SPIPlanPtr plan, Datum *args,
								  const char *nulls, List **pending, ErrorData **edata);
extern void worker_record_failed_event(WStream *stream, WView *view, const char *position,
									   const char *event, ErrorData *edata);
extern void worker_record_kafka_failure(KafkaSource *src, WView *view,
										const rd_kafka_message_t *m, int sqlerrcode,
										const char *message, const char *detail);
extern char *worker_row_as_json(WStream *stream, SourceRows *rows, int i);

/* window_worker.c */
extern void worker_session_index(WView *view, const char *key, uint32 keylen, bool add);
extern void worker_count_index(WView *view, const char *key, uint32 keylen, int64 id,
							   int64 count);
extern void worker_window_stored(WView *view, const char *key, uint32 keylen,
								 bool new_group);
extern List *worker_merge_sessions(WView *view);
extern List *worker_count_events(WView *view);
extern void worker_publish_watermarks(WStream *stream);
extern void worker_close_windows(WView *view, TimestampTz *mark, List **removed);
extern void worker_windows_closed(WView *view, TimestampTz mark, List *removed);
extern void worker_log_late_events(WStream *stream, WView *view, Datum *snap_args,
								   const char *snap_nulls);
extern void worker_source_late_events(WStream *stream, KafkaSource *src, WView *view,
									  SourceRows *rows, const int *rowmsg);
extern void worker_note_event_times(WStream *stream, KafkaSource *src, SourceRows *rows,
									int nmsgs, const int *rowmsg);
extern void worker_checkpoint_late_rows(WStream *stream, WView *view);
extern SPIPlanPtr worker_prepare_late_plan(WView *view, const char *late_query, Oid *types);

#endif /* STREAMPROC_WORKER_INT_H */
