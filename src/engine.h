/*-------------------------------------------------------------------------
 *
 * engine.h
 *	  What the files of the ingest worker share: the worker's state as one
 *	  struct (Worker), and its streams, log shards and views.
 *
 *	  worker.c        the process: main loop, scheduling, sync(), exit
 *	  catalog.c       loading the catalog into these structs, and refreshing
 *	                  only what a catalog change touched
 *	  batch.c         running a view over a batch (log shard or Kafka rows)
 *	                  and merging its results into the view's group map
 *	  checkpoint.c    the checkpoint transaction
 *	  window_worker.c watermarks, sessions, count windows, late events,
 *	                  closing windows
 *
 *	  Not for use outside these files: everything here belongs to the one
 *	  worker process.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_ENGINE_H
#define STREAMPROC_ENGINE_H

#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "storage/block.h"
#include "utils/hsearch.h"

#include "combine.h"
#include "dedup.h"
#include "groupkey.h"
#include "groupmap.h"
#include "kafka.h"
#include "launcher.h"
#include "positions.h"
#include "state.h"
#include "statestore.h"
#include "view.h"
#include "windows.h"

/*
 * Heap blocks of a log shard one piece of a batch covers (64 MB).  Each
 * piece merges every group it touches into shared memory once (combine,
 * serialize: microseconds per group), so bigger pieces merge less often;
 * the worker's memory for a piece follows its groups.  With 8 MB pieces, a
 * COPY of 2M events into three views spent 8.5 s merging, with 64 MB 5 s.
 */
#define SUBBATCH_BLOCKS 8192

/* Pending Kafka rows (or late events) that force an early checkpoint. */
#define PENDING_ROWS_CHECKPOINT 100000


/* Backoff of a view that failed, in ms. */
#define VIEW_BACKOFF_MIN 200
#define VIEW_BACKOFF_MAX 30000

typedef struct Worker Worker;
typedef struct WStream WStream;
typedef struct WShard WShard;
typedef struct WView WView;

/*
 * Keys of groups changed since the last checkpoint, appended once per
 * group (the dirty bit in the group map says whether it is listed):
 * entries of uint32 hash, uint32 keylen, then the key.
 */
typedef struct DirtyList
{
	StringInfoData buf;
	int64 count;
} DirtyList;

/*
 * The results of a batch for one view, computed before anything is
 * applied: entries of a PendingHeader, the key, the new packed state.
 */
typedef struct PendingHeader
{
	uint32 hash;
	uint32 keylen;
	int32 statelen;  /* -1: remove the group from our slot */
	int32 oldlen;    /* our slot's current state's length, -1: none */
	bool superseded; /* a later entry of the same list replaces it */
} PendingHeader;

typedef struct Pending
{
	StringInfoData arena;
	int64 count;
	int64 reserve; /* bytes the apply may add to the group map */
} Pending;

/* A Kafka partition a view is behind the source in (WView.kafka_lag). */
typedef struct KafkaLagKey
{
	KafkaSource *src;
	int32 partition;
} KafkaLagKey;

typedef struct KafkaLag
{
	KafkaLagKey key;
	int64 offset; /* next offset the view needs */
	bool saved;   /* a row of streamproc.positions holds it */
} KafkaLag;

/* An event whose processing failed, until the checkpoint writes it. */
typedef struct FailedEvent
{
	char *source;
	Oid viewid;
	char *position;
	char *event;
	char *sqlstate;
	char *message;
	char *detail;
	char *topic; /* Kafka messages: topic, partition, offset, key */
	int32 partition;
	int64 offset;
	char *key;
} FailedEvent;

/* A shard of a stream's log that this worker reads for some views. */
struct WShard
{
	WStream *stream;
	int shard;
	Oid logid;
	char *logname; /* quoted, schema-qualified */
	bool owned;    /* ours: we trim it */
	List *views;   /* WView * we run over it */
	SPIPlanPtr count_plan;
	SPIPlanPtr rows_plan;
	SPIPlanPtr late_rows_plan;
	Datum last_snapshot;    /* of our last batch, or 0 */
	TimestampTz max_time;   /* greatest event time read */
	TimestampTz last_event; /* when it last had events, 0: never */
	bool vacuum_needed;     /* the last checkpoint deleted rows */
	bool pending;           /* events were committed for it */
};

/* A stream this worker reads (a log shard, a Kafka source). */
struct WStream
{
	Oid streamid;
	char *name;
	Oid logid; /* the partitioned log */
	int nshards;
	TupleDesc desc;
	char *signature; /* what a change of the stream's definition changes */
	List *shards;    /* WShard * */
	List *views;     /* WView * we feed */
	List *sources;   /* KafkaSource * we consume for it */
	bool has_append;

	/* Event time, when the stream has windowed views (windows.c). */
	AttrNumber event_time; /* 0: no windowed view */
	int64 watermark_delay;
	int64 idle_timeout; /* -1: inputs never go idle */

	/* dedup_key: the stream's set of claimed keys (dedup.c), or NULL. */
	DedupStream *dedup;

	/* Kafka rows for append views, kept until the checkpoint. */
	MemoryContext pending_cxt;
	SourceRows pending;
	int pending_cap;
	int32 *pending_partitions;
	int64 *pending_offsets;
	KafkaSource **pending_sources;
};

/* A continuous view as the worker runs it. */
struct WView
{
	Oid viewid;
	char *name;
	char kind; /* STREAMPROC_VIEW_AGGREGATING, _APPEND */
	Oid owner;
	StreamprocView *def;
	TransactionId def_xmin; /* of its catalog row: changed means reload */
	WStream *stream;        /* NULL: a view we only hold our slot of */
	Oid upstream;           /* the view it reads through a feed (feed.c), or 0 */
	bool held;              /* not fed by us: our slot is loaded, no more */

	SPIPlanPtr batch_plan;  /* 'a': partial states of a log range; 'p': INSERT */
	SPIPlanPtr event_plan;  /* the same for one log row */
	SPIPlanPtr source_plan; /* the same over the rows of a Kafka batch */

	/* aggregating views */
	Oid groups_table;    /* the foreign table readers read it through */
	GroupKeyCodec *keys; /* the ordinary group columns */
	int ngroup;
	int key_first; /* batch column of the first ordinary group key */
	ViewAggs *aggs;
	int sign_agg;             /* over an aggregating view: sum("$sign"), else -1 */
	PackedState *sign_states; /* ... and room to split a state (batch_group_left) */
	ViewState *vs;
	GroupMap *map;
	SlotStore *store;
	DirtyList dirty;

	/* positions */
	LogPosition *logpos; /* per shard of the stream (nshards entries) */
	bool *logpos_changed;
	bool *reads_shard; /* per shard: we run this view over it */
	HTAB *kafka_lag;   /* KafkaLag, when behind a Kafka source */

	/* status */
	ViewSlotStatus status;
	TimestampTz retry_at;
	int backoff_ms;
	char *last_error;
	List *batch_failures; /* FailedEvent * of the batch being run */

	/* statistics since they were published */
	ViewStatsDelta stats;

	/* Windowed views (windows.c); window.kind is 0 for the others. */
	WindowSpec window;
	TimestampTz closed;      /* watermark our slot last closed windows at */
	TimestampTz cutoff;      /* events before it are late (from closed) */
	TimestampTz min_end;     /* no window of our slot closes before this */
	SPIPlanPtr late_plan;    /* INSERT into late_events, or NULL */
	char *late_error;        /* late_events is set but does not fit: why */
	char *late_query;        /* the text late_plan was prepared from */
	bool fold_pending;       /* slots of gone workers were folded into ours */
	MemoryContext late_cxt;  /* late events kept until the checkpoint */
	SourceRows late;         /* ... their rows */
	TimestampTz *late_marks; /* ... and the watermark each was late at */
	int late_cap;
	HTAB *sessions;                 /* session views: our open sessions per group */
	StreamprocAggInfo *first_event; /* session views: min(ts), max(ts) of a bin */
	StreamprocAggInfo *last_event;
	HTAB *counters;              /* count-window views: our current window per group */
	HTAB *open_ends;             /* window end -> keys of our slot (closing index) */
	TimestampTz closing_mark;    /* the checkpoint in progress closes at this */
	TimestampTz closing_min_end; /* ... and min_end is this after it */
	Pending closing;             /* ... and removes these groups */
};

/* The worker: everything its loop works with. */
struct Worker
{
	WorkerSlot *slot;
	int index;                 /* our state slot */
	MemoryContext catalog_cxt; /* streams, views, plans */
	MemoryContext batch_cxt;   /* reset after every batch */
	MemoryContext row_cxt;     /* reset for every row merged */
	uint64 catalog_generation;
	uint64 sync_seen; /* the last sync() generation seen */
	List *streams;    /* WStream * */
	List *views;      /* WView *, every view we have a slot of */
	List *sources;    /* KafkaSource * */
	List *failed_events;
	bool checkpoint_needed; /* batches merged since the last one */
	bool checkpoint_soon;   /* rows kept in memory pile up */
	bool batch_needed;
	TimestampTz last_batch;
	TimestampTz last_checkpoint;
	double last_checkpoint_ms;
	int checkpoint_backoff_ms; /* after a failed checkpoint */
	TimestampTz checkpoint_retry_at;
	Oid state_runs_relid;
	Oid positions_relid;
	int64 rows_written;   /* state_runs rows since their last vacuum */
	Oid dedup_runs_relid; /* streamproc.dedup_runs (0.4), or InvalidOid */
	rd_kafka_message_t **kafka_msgs;
	int kafka_msgs_size;
};

/* worker.c */
extern void worker_view_failed(Worker *w, WView *view, ErrorData *edata);
extern void worker_view_ok(Worker *w, WView *view);
extern bool worker_view_runnable(Worker *w, WView *view);
extern void worker_record_failure(Worker *w, List **list, const char *source,
								  WView *view, const char *position,
								  const char *event, ErrorData *edata);
extern void worker_record_kafka_failure(Worker *w, List **list, KafkaSource *src,
										WView *view, const rd_kafka_message_t *m,
										int sqlerrcode, const char *message,
										const char *detail);
extern char *worker_row_as_json(WStream *stream, SourceRows *rows, int i);
extern SPIPlanPtr worker_prepare(const char *sql, int nargs, Oid *argtypes);

/* catalog.c */
extern void catalog_load(Worker *w);
extern void catalog_release(Worker *w);
extern WView *catalog_find_view(Worker *w, Oid viewid);

/* batch.c */
extern int64 batch_run_shard(Worker *w, WShard *shard);
extern KafkaLag *view_kafka_lag(WView *view, KafkaSource *src, int32 partition, bool *found);
extern int batch_run_source(Worker *w, WStream *stream, KafkaSource *src,
							bool *more);
extern void batch_apply(Worker *w, WView *view, Pending *pending);
extern void pending_init(Pending *p);
extern void pending_add(Pending *p, uint32 hash, const char *key, uint32 keylen,
						const char *state, int32 statelen, int32 oldlen);
extern void dirty_add(WView *view, uint32 hash, const char *key, uint32 keylen);
extern bool batch_group_left(WView *view, const char *data, size_t len);
extern bool batch_run_late(Worker *w, WView *view, Datum *args, ErrorData **edata,
						   bool *unfit);
extern bool batch_run_in_subxact(Worker *w, WView *view, SPIPlanPtr plan,
								 Datum *args, const char *nulls,
								 DestReceiver *dest, ErrorData **edata);
extern DestReceiver *batch_merge_receiver(Worker *w, WView *view,
										  Pending *pending);

/* checkpoint.c */
extern void checkpoint_run(Worker *w);

/* window_worker.c */
extern void window_view_init(Worker *w, WView *view);
extern void window_group_loaded(WView *view, const char *key, uint32 keylen,
								bool add);
extern void window_merge_pieces(Worker *w, WView *view, List *pieces,
								Pending *pending);
extern void window_publish_watermarks(Worker *w, WStream *stream);
extern void window_close(Worker *w, WView *view);
extern void window_closed(Worker *w, WView *view);
extern void window_log_late_events(Worker *w, WShard *shard, WView *view,
								   Datum *args, const char *nulls);
extern void window_source_late_events(Worker *w, WStream *stream, KafkaSource *src,
									  WView *view, SourceRows *rows,
									  const bool *skip, rd_kafka_message_t **msgs,
									  const int *rowmsg);
extern void window_note_event_times(WStream *stream, KafkaSource *src,
									SourceRows *rows, rd_kafka_message_t **msgs,
									int nmsgs, const int *rowmsg);
extern void window_checkpoint_late_rows(Worker *w, WStream *stream, WView *view);
extern SPIPlanPtr window_prepare_late_plan(WView *view, const char *late_query);

/* A row of a session or count-window view's batch query (window_worker.c). */
typedef struct WindowPiece
{
	char *gkey; /* group key without the window prefix */
	uint32 glen;
	TimestampTz start;
	TimestampTz end;
	char *state; /* packed; NULL: an open session's, fetched when merged */
	uint32 statelen;
	bool existing; /* an open session of our slot */
} WindowPiece;

#endif /* STREAMPROC_ENGINE_H */
