/*-------------------------------------------------------------------------
 *
 * state.h
 *	  Shared-memory state of continuous views (see state.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_STATE_H
#define STREAMPROC_STATE_H

#include "postgres.h"

#include "lib/dshash.h"
#include "nodes/pg_list.h"
#include "storage/lwlock.h"
#include "utils/dsa.h"

/* Most state slots (ingest workers per database) a view can have. */
#define STREAMPROC_MAX_SLOTS 64

/*
 * One continuous view's entry in the registry of view states.  The
 * registry is a fixed array in the main shared memory segment, protected by
 * StreamprocStateShared.lock; every field below is read and written only
 * with that lock held (shared to read, exclusive to write).
 */
typedef struct ViewShared
{
	Oid dbid; /* InvalidOid: the entry is free */
	Oid viewid;
	dshash_table_handle groups; /* group key -> per-slot packed states */
	uint64 attached;            /* bit per worker slot that registered it */
	uint64 loaded;              /* bit per worker slot loaded from its checkpoint */

	/* statistics, maintained by the view's workers */
	uint64 events;      /* events merged into the state */
	uint64 errors;      /* events that failed and went to errors */
	int64 groups_count; /* groups in shared memory */
	int64 memory;       /* bytes of keys and states in the area */
	TimestampTz last_checkpoint;
	double last_checkpoint_ms;

	/*
	 * Windowed views (worker.c, windows.c).  watermark never goes back: it
	 * is the greatest of the minimum over input_slots of input_watermark,
	 * computed once every slot in source_slots has published (worker.c).  closed[slot] is the watermark
	 * the slot last closed its windows at; writers has a bit per slot that
	 * has merged events into the view.
	 */
	TimestampTz watermark;
	uint64 input_slots;     /* slots that publish an input watermark */
	uint64 published_slots; /* slots that published since source_slots changed */
	uint64 source_slots;    /* slots that read a Kafka source of the stream */
	TimestampTz input_watermark[STREAMPROC_MAX_SLOTS];
	TimestampTz closed[STREAMPROC_MAX_SLOTS];
	uint64 writers;
	uint64 late_events;
} ViewShared;

extern Size streamproc_state_shmem_size(void);
extern void streamproc_state_shmem_init(bool found);

extern dsa_area *streamproc_state_area(void);
extern int64 streamproc_state_memory_used(void);

extern ViewShared *streamproc_state_lookup(Oid dbid, Oid viewid);
extern ViewShared *streamproc_state_register(Oid dbid, Oid viewid, int slot);
extern void streamproc_state_forget(Oid dbid, Oid viewid, int slot);
extern List *streamproc_state_registered_views(Oid dbid, int slot);
extern bool streamproc_state_ready(ViewShared *view);
extern LWLock *streamproc_state_lock(void);

extern dshash_table *streamproc_state_attach_groups(ViewShared *view);
extern void streamproc_state_reset_slot(dshash_table *groups, ViewShared *view,
										int slot);
extern bytea *streamproc_state_fetch(dshash_table *groups, const char *key,
									 uint32 keylen, int slot);
extern int64 streamproc_state_remove(dshash_table *groups, const char *key,
									 uint32 keylen, int slot, bool *deleted);
extern int64 streamproc_state_store(dshash_table *groups, const char *key,
									uint32 keylen, int slot, bytea *state,
									bool *new_group);

/* Callback for streamproc_state_scan: key bytes, states of each slot. */
typedef void (*StateScanCallback)(const char *key, uint32 keylen,
								  bytea **slots, int nslots, void *arg);
extern void streamproc_state_scan(dshash_table *groups, StateScanCallback cb,
								  void *arg);

#endif /* STREAMPROC_STATE_H */
