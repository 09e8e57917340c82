/*-------------------------------------------------------------------------
 *
 * state.h
 *	  The registry of continuous views' shared state (see state.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_STATE_H
#define STREAMPROC_STATE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/dsa.h"

#include "groupmap.h"

/* Most state slots (ingest workers per database) a view can have. */
#define STREAMPROC_MAX_SLOTS GROUPMAP_MAX_SLOTS

/* Longest last_error kept per view. */
#define VIEW_ERROR_LEN 256

/* What one state slot of a view is doing (stat_views.state). */
typedef enum ViewSlotStatus
{
	VIEW_SLOT_IDLE = 0, /* nothing to do, or not attached */
	VIEW_SLOT_RUNNING,
	VIEW_SLOT_RETRYING, /* a transient error: retried with backoff */
	VIEW_SLOT_FAILED,   /* an error of the view: retried with backoff */
	VIEW_SLOT_PAUSED    /* waiting for streamproc.state_memory */
} ViewSlotStatus;

/* A view's entry in the registry: opaque, stable while the view exists. */
typedef struct ViewState ViewState;

extern Size streamproc_state_shmem_size(void);
extern void streamproc_state_shmem_init(bool found);

extern dsa_area *streamproc_state_area(void);
extern dsa_pointer streamproc_state_new_map(void);
extern GroupMap *streamproc_state_map_at(dsa_pointer map);

/* Memory: bytes in use, and reservations against streamproc.state_memory. */
extern int64 streamproc_state_memory_used(void);
extern bool streamproc_state_reserve(int64 bytes);
extern void streamproc_state_release(int64 bytes);

/* Workers: registering, loading and forgetting their slot of a view. */
extern ViewState *streamproc_state_register(Oid dbid, Oid viewid, int slot);
extern void streamproc_state_forget(Oid dbid, Oid viewid, int slot);
extern List *streamproc_state_registered_views(Oid dbid, int slot);
extern GroupMap *streamproc_state_attach_map(ViewState *vs);
extern void streamproc_state_begin_load(ViewState *vs, int slot);
extern void streamproc_state_end_load(ViewState *vs, int slot, bool writer,
									  TimestampTz closed, TimestampTz any_closed);

/* Workers: statistics and status of their slot. */
typedef struct ViewStatsDelta
{
	int64 events;
	int64 errors;
	int64 late_events;
} ViewStatsDelta;

extern void streamproc_state_add_stats(ViewState *vs, int slot,
									   const ViewStatsDelta *delta);
extern void streamproc_state_checkpointed(ViewState *vs, TimestampTz at,
										  double ms);
extern void streamproc_state_set_status(ViewState *vs, int slot,
										ViewSlotStatus status,
										const char *error);

/* Windows (window_worker.c): watermarks and closing. */
extern void streamproc_state_set_source_slots(ViewState *vs, uint64 slots);
/*
 * What a slot knows of a stream's event times: the greatest over the log
 * shards it reads (the log is one input, split among workers), the least
 * greatest over its active Kafka partitions (each an input), and the
 * greatest over everything (for when every input is idle).
 */
typedef struct SlotEventTimes
{
	bool log_seen;           /* a shard of ours had events */
	bool log_active;         /* one had them within idle_timeout */
	TimestampTz log_time;    /* greatest event time in our shards */
	bool kafka_active;       /* an active partition of ours */
	TimestampTz kafka_least; /* least greatest event time of those */
	TimestampTz greatest;    /* greatest event time of all our inputs */
} SlotEventTimes;

extern TimestampTz streamproc_state_publish_watermark(ViewState *vs, int slot,
													  const SlotEventTimes *times,
													  int64 delay, bool *advanced);
extern bool streamproc_state_windows_settled(Oid dbid, int nslots);
extern TimestampTz streamproc_state_watermark(ViewState *vs);
extern void streamproc_state_begin_closing(ViewState *vs);
extern void streamproc_state_end_closing(ViewState *vs, int slot,
										 TimestampTz closed);

/*
 * Readers: what the registry says about a view, copied under its lock.
 * found is false when no worker registered the view (yet).
 */
typedef struct ViewStateInfo
{
	bool found;
	bool ready;      /* every slot loaded: shared memory is complete */
	dsa_pointer map; /* the group map, for streamproc_state_read_map() */
	uint64 load_generation;
	int64 events;
	int64 errors;
	int64 late_events;
	int64 groups;
	int64 memory;
	TimestampTz last_checkpoint;
	double last_checkpoint_ms;
	TimestampTz watermark;
	uint64 writers; /* slots that ever merged events */
	TimestampTz closed[STREAMPROC_MAX_SLOTS];
	ViewSlotStatus status; /* the worst of the slots' */
	char last_error[VIEW_ERROR_LEN];
} ViewStateInfo;

extern bool streamproc_state_info(Oid dbid, Oid viewid, ViewStateInfo *info);
extern GroupMap *streamproc_state_read_map(const ViewStateInfo *info);
extern uint64 streamproc_state_load_generation(Oid dbid, Oid viewid);

/*
 * Windowed views: a reader that reads shared memory and closed windows
 * together holds the view's closing lock (shared) while it copies shared
 * memory and reads the slots' closing bounds.
 */
extern void streamproc_state_lock_windows(Oid dbid, Oid viewid);
extern void streamproc_state_unlock_windows(void);

/* Every view of a database with state, for streamproc._view_stats(). */
extern List *streamproc_state_views_of(Oid dbid);

#endif /* STREAMPROC_STATE_H */
