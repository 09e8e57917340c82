/*-------------------------------------------------------------------------
 *
 * state.c
 *	  The registry of continuous views' shared state, the DSA area that
 *	  holds it, and the memory budget.
 *
 * Each aggregating continuous view keeps its groups in a group map
 * (groupmap.c) in one DSA area shared by the whole server.  The registry
 * is a fixed array in the main shared memory segment, sized by
 * streamproc.max_views, with one entry (ViewShared) per view: the map's
 * handle, which worker slots are attached and loaded, statistics, the
 * status of each slot, and the watermarks and closing bounds of windowed
 * views.  Only this file reads or writes ViewShared; workers and readers
 * call the functions below.
 *
 * Every ingest worker of the database registers every view and loads its
 * own slot from the checkpoint, whether or not it feeds the view: a slot
 * written before a restart (a Kafka source's second worker, a paused
 * source) must be in memory for readers.  ViewShared.loaded has a bit per
 * slot; readers use shared memory only when every slot is loaded, and
 * read the checkpoint before (viewscan.c).  A slot's load (reset, then
 * reload) bumps load_generation, so that a reader that copies shared
 * memory in pieces can tell that it changed under it.  The map is
 * destroyed by the last worker that forgets the view (ViewShared.attached);
 * no reader can be reading it then: a reader holds a lock on the view,
 * and workers forget views only once they are dropped.
 *
 * Memory budget.  Group maps count the bytes they allocate in one shared
 * total.  Before a worker merges a batch it reserves the bytes the batch
 * can add; a reservation succeeds only while the total plus every
 * reservation stays within streamproc.state_memory, so the budget holds
 * whatever the workers do at the same time.  The budget is the server's:
 * the DSA area is.
 *
 * Locking:
 *	- The registry array and every ViewShared field are protected by the
 *	  first LWLock of the "streamproc" tranche, except windows_lock, which
 *	  is each entry's own (tranche streamproc_view_windows): a worker holds
 *	  it exclusively while it publishes a slot's closing bound and removes
 *	  the windows it closed, a reader shared while it copies shared memory
 *	  and reads the bounds (so a window is read from exactly one of
 *	  shared memory and the closed windows table).
 *	- Groups are protected by their map's partition locks (groupmap.c).
 *	- The DSA handle is set once, with the registry lock held exclusively.
 *	- The memory total and the reservations are atomics.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "state.h"
#include "streamproc.h"

/* One view's entry in the registry; see the header comment. */
typedef struct ViewShared
{
	Oid dbid; /* InvalidOid: the entry is free */
	Oid viewid;
	dsa_pointer map; /* its group map */
	uint64 attached; /* bit per worker slot that registered it */
	uint64 loaded;   /* bit per slot loaded from its checkpoint */
	uint64 load_generation;
	LWLock windows_lock; /* see the header comment */

	/* statistics, maintained by the view's workers */
	int64 events;
	int64 errors;
	int64 late_events;
	TimestampTz last_checkpoint;
	double last_checkpoint_ms;
	uint8 status[STREAMPROC_MAX_SLOTS]; /* ViewSlotStatus per slot */
	char last_error[VIEW_ERROR_LEN];

	/*
	 * Windowed views.  watermark never goes back: it moves to the inputs'
	 * time minus the stream's watermark_delay once every slot in
	 * source_slots has published (see streamproc_state_publish_watermark).
	 * closed[slot] is the watermark the slot last closed its windows at;
	 * writers has a bit per slot that has merged events into the view.
	 */
	TimestampTz watermark;
	uint64 published_slots;
	uint64 source_slots;
	SlotEventTimes times[STREAMPROC_MAX_SLOTS];
	TimestampTz closed[STREAMPROC_MAX_SLOTS];
	uint64 writers;
} ViewShared;

struct ViewState
{
	ViewShared shared;
};

/* Shared part of this module, in the main shared memory segment. */
typedef struct StateShared
{
	LWLock *lock;              /* the registry lock; set at startup */
	int dsa_tranche;           /* tranche of the area's locks */
	int map_tranche;           /* tranche of the group maps' partition locks */
	int windows_tranche;       /* tranche of ViewShared.windows_lock */
	dsa_handle area;           /* DSM_HANDLE_INVALID until first use */
	pg_atomic_uint64 memory;   /* bytes the group maps allocated */
	pg_atomic_uint64 reserved; /* reserved by workers about to merge */
	int max_views;
	ViewShared views[FLEXIBLE_ARRAY_MEMBER];
} StateShared;

static StateShared *state_shared = NULL;

/* This backend's attachment to the area, for the rest of the session. */
static dsa_area *state_area = NULL;

/* The windows lock a reader holds (streamproc_state_lock_windows). */
static LWLock *held_windows_lock = NULL;

static void register_tranches(void);

Size
streamproc_state_shmem_size(void)
{
	return add_size(offsetof(StateShared, views),
					mul_size(streamproc_max_views, sizeof(ViewShared)));
}

/*
 * streamproc_state_shmem_init
 *		Initialize or attach to the shared part; called from the shmem
 *		startup hook with AddinShmemInitLock held.
 */
void
streamproc_state_shmem_init(bool found)
{
	bool state_found;

	state_shared = ShmemInitStruct("streamproc view state",
								   streamproc_state_shmem_size(),
								   &state_found);
	if (!state_found)
	{
		memset(state_shared, 0, streamproc_state_shmem_size());
		state_shared->lock = &(GetNamedLWLockTranche("streamproc"))[0].lock;
		state_shared->dsa_tranche = LWLockNewTrancheId();
		state_shared->map_tranche = LWLockNewTrancheId();
		state_shared->windows_tranche = LWLockNewTrancheId();
		state_shared->area = DSM_HANDLE_INVALID;
		pg_atomic_init_u64(&state_shared->memory, 0);
		pg_atomic_init_u64(&state_shared->reserved, 0);
		state_shared->max_views = streamproc_max_views;
	}
}

static void
register_tranches(void)
{
	static bool done = false;

	if (done)
		return;
	LWLockRegisterTranche(state_shared->dsa_tranche, "streamproc_state_area");
	LWLockRegisterTranche(state_shared->map_tranche, "streamproc_state_groups");
	LWLockRegisterTranche(state_shared->windows_tranche, "streamproc_view_windows");
	done = true;
}

/*
 * streamproc_state_area
 *		The shared DSA area, created by its first user and attached for the
 *		rest of the session.
 */
dsa_area *
streamproc_state_area(void)
{
	MemoryContext oldcxt;
	bool held;

	if (state_area != NULL)
		return state_area;

	register_tranches();

	/* Callers may already hold the registry lock (exclusively, to create). */
	held = LWLockHeldByMe(state_shared->lock);
	if (held && !LWLockHeldByMeInMode(state_shared->lock, LW_EXCLUSIVE) &&
		state_shared->area == DSM_HANDLE_INVALID)
		elog(ERROR, "streamproc state area must be created with the registry lock held exclusively");

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	if (!held)
		LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	if (state_shared->area == DSM_HANDLE_INVALID)
	{
		state_area = dsa_create(state_shared->dsa_tranche);
		dsa_pin(state_area);
		state_shared->area = dsa_get_handle(state_area);
	}
	else
		state_area = dsa_attach(state_shared->area);
	dsa_pin_mapping(state_area);
	if (!held)
		LWLockRelease(state_shared->lock);
	MemoryContextSwitchTo(oldcxt);

	return state_area;
}

/*
 * streamproc_state_new_map, streamproc_state_map_at
 *		A group map in the shared area that is not a view's (dedup.c's sets
 *		of keys), counted in the memory budget like the views' maps; and an
 *		attachment to one by its handle.
 */
dsa_pointer
streamproc_state_new_map(void)
{
	dsa_area *area = streamproc_state_area();

	return groupmap_create(area, state_shared->map_tranche, &state_shared->memory);
}

GroupMap *
streamproc_state_map_at(dsa_pointer map)
{
	return groupmap_attach(streamproc_state_area(), map, &state_shared->memory);
}

int64
streamproc_state_memory_used(void)
{
	return (int64)pg_atomic_read_u64(&state_shared->memory);
}

/*
 * streamproc_state_reserve
 *		Reserve bytes a merge may add; false when the budget cannot hold
 *		them on top of what is used and reserved.  The caller releases the
 *		reservation once the merge is done (the maps count what it really
 *		allocated).
 */
bool
streamproc_state_reserve(int64 bytes)
{
	int64 budget = (int64)streamproc_state_memory * 1024;
	uint64 old;

	if (bytes <= 0)
		return true;
	old = pg_atomic_read_u64(&state_shared->reserved);
	for (;;)
	{
		if ((int64)pg_atomic_read_u64(&state_shared->memory) + (int64)old + bytes > budget)
			return false;
		if (pg_atomic_compare_exchange_u64(&state_shared->reserved, &old, old + bytes))
			return true;
	}
}

void
streamproc_state_release(int64 bytes)
{
	if (bytes > 0)
		pg_atomic_sub_fetch_u64(&state_shared->reserved, bytes);
}

/* The registry entry of a view, or NULL; the caller holds the lock. */
static ViewShared *
lookup(Oid dbid, Oid viewid)
{
	int i;

	for (i = 0; i < state_shared->max_views; i++)
	{
		ViewShared *v = &state_shared->views[i];

		if (v->dbid == dbid && v->viewid == viewid)
			return v;
	}
	return NULL;
}

/*
 * streamproc_state_register
 *		Find or create the registry entry and the group map of a view, and
 *		mark it attached by a worker slot.  Takes the registry lock.
 */
ViewState *
streamproc_state_register(Oid dbid, Oid viewid, int slot)
{
	ViewShared *v;
	int i;

	register_tranches();
	(void)streamproc_state_area();
	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v = lookup(dbid, viewid);
	if (v == NULL)
	{
		for (i = 0; i < state_shared->max_views; i++)
		{
			if (state_shared->views[i].dbid == InvalidOid)
			{
				v = &state_shared->views[i];
				break;
			}
		}
		if (v == NULL)
		{
			LWLockRelease(state_shared->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many continuous views"),
					 errdetail("The server keeps the state of at most %d continuous views.",
							   state_shared->max_views),
					 errhint("Increase \"streamproc.max_views\" and restart the server.")));
		}
		memset(v, 0, sizeof(ViewShared));
		v->dbid = dbid;
		v->viewid = viewid;
		v->map = groupmap_create(streamproc_state_area(), state_shared->map_tranche,
								 &state_shared->memory);
		LWLockInitialize(&v->windows_lock, state_shared->windows_tranche);
		v->watermark = DT_NOBEGIN;
		for (i = 0; i < STREAMPROC_MAX_SLOTS; i++)
			v->closed[i] = DT_NOBEGIN;
	}
	v->attached |= UINT64CONST(1) << slot;
	LWLockRelease(state_shared->lock);
	return (ViewState *)v;
}

/* A backend's attachment to a view's group map (palloc'd). */
GroupMap *
streamproc_state_attach_map(ViewState *vs)
{
	dsa_pointer dp;

	LWLockAcquire(state_shared->lock, LW_SHARED);
	dp = vs->shared.map;
	LWLockRelease(state_shared->lock);
	return groupmap_attach(streamproc_state_area(), dp, &state_shared->memory);
}

/*
 * streamproc_state_begin_load, streamproc_state_end_load
 *		Around a worker's (re)load of its slot from the checkpoint: readers
 *		do not use shared memory in between.  writer says whether the slot
 *		holds anything; closed is the watermark it closed windows at.
 */
void
streamproc_state_begin_load(ViewState *vs, int slot)
{
	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	vs->shared.loaded &= ~(UINT64CONST(1) << slot);
	vs->shared.load_generation++;
	LWLockRelease(state_shared->lock);
}

void
streamproc_state_end_load(ViewState *vs, int slot, bool writer, TimestampTz closed,
						  TimestampTz any_closed)
{
	ViewShared *v = &vs->shared;

	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v->loaded |= UINT64CONST(1) << slot;
	v->closed[slot] = closed;

	/*
	 * The watermark never goes back, also across restarts: it is at least
	 * the greatest one any slot closed windows at (any_closed), whichever slot
	 * loads first.
	 */
	if (!TIMESTAMP_NOT_FINITE(closed) && closed > v->watermark)
		v->watermark = closed;
	if (!TIMESTAMP_NOT_FINITE(any_closed) && any_closed > v->watermark)
		v->watermark = any_closed;
	if (writer)
		v->writers |= UINT64CONST(1) << slot;
	LWLockRelease(state_shared->lock);
}

/*
 * streamproc_state_forget
 *		A worker slot is done with a view (dropped, or its database is going
 *		away): free the slot's states, and destroy the view's map and
 *		registry entry if no other slot is attached.
 *
 *		The slot stays attached while its states are freed: two workers that
 *		forget a view at once (DROP EXTENSION stops both) must not have one
 *		destroy the map under the other's reset, which then read freed DSA
 *		memory (found by UBSan in t/060: a misaligned GroupEntry).  The
 *		last slot to detach, after its own reset, destroys the map.
 */
void
streamproc_state_forget(Oid dbid, Oid viewid, int slot)
{
	ViewShared *v;
	GroupMap *map = NULL;
	bool destroy = false;

	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v = lookup(dbid, viewid);
	if (v != NULL)
	{
		v->loaded &= ~(UINT64CONST(1) << slot);
		v->load_generation++;
		map = groupmap_attach(streamproc_state_area(), v->map, &state_shared->memory);
	}
	LWLockRelease(state_shared->lock);
	if (map == NULL)
		return;

	groupmap_reset_slot(map, slot);

	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v = lookup(dbid, viewid);
	if (v != NULL)
	{
		v->attached &= ~(UINT64CONST(1) << slot);
		if (v->attached == 0)
		{
			destroy = true;
			memset(v, 0, sizeof(ViewShared));
		}
	}
	LWLockRelease(state_shared->lock);
	if (destroy)
		groupmap_destroy(map);
	else
		groupmap_detach(map);
}

/*
 * streamproc_state_registered_views
 *		The views of a database that a worker slot is attached to (slot < 0:
 *		all with state), as a list of oids.
 */
List *
streamproc_state_registered_views(Oid dbid, int slot)
{
	List *result = NIL;
	int i;

	LWLockAcquire(state_shared->lock, LW_SHARED);
	for (i = 0; i < state_shared->max_views; i++)
		if (state_shared->views[i].dbid == dbid &&
			(slot < 0 || (state_shared->views[i].attached & (UINT64CONST(1) << slot)) != 0))
			result = lappend_oid(result, state_shared->views[i].viewid);
	LWLockRelease(state_shared->lock);
	return result;
}

List *
streamproc_state_views_of(Oid dbid)
{
	return streamproc_state_registered_views(dbid, -1);
}

void
streamproc_state_add_stats(ViewState *vs, int slot, const ViewStatsDelta *delta)
{
	ViewShared *v = &vs->shared;

	if (delta->events == 0 && delta->errors == 0 && delta->late_events == 0)
		return;
	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v->events += delta->events;
	v->errors += delta->errors;
	v->late_events += delta->late_events;
	if (delta->events > 0)
		v->writers |= UINT64CONST(1) << slot;
	LWLockRelease(state_shared->lock);
}

void
streamproc_state_checkpointed(ViewState *vs, TimestampTz at, double ms)
{
	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	vs->shared.last_checkpoint = at;
	vs->shared.last_checkpoint_ms = ms;
	LWLockRelease(state_shared->lock);
}

void
streamproc_state_set_status(ViewState *vs, int slot, ViewSlotStatus status,
							const char *error)
{
	ViewShared *v = &vs->shared;
	int i;
	bool troubled = false;

	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v->status[slot] = (uint8)status;
	if (error != NULL)
		strlcpy(v->last_error, error, VIEW_ERROR_LEN);
	/* Once no slot is in trouble any more, the error is history. */
	for (i = 0; i < STREAMPROC_MAX_SLOTS; i++)
		troubled |= (v->status[i] == VIEW_SLOT_FAILED || v->status[i] == VIEW_SLOT_RETRYING ||
					 v->status[i] == VIEW_SLOT_PAUSED);
	if (!troubled)
		v->last_error[0] = '\0';
	LWLockRelease(state_shared->lock);
}

/*
 * streamproc_state_set_source_slots
 *		The slots that read the stream's Kafka sources: all of them must
 *		publish before the view's watermark moves.
 */
void
streamproc_state_set_source_slots(ViewState *vs, uint64 slots)
{
	ViewShared *v = &vs->shared;

	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	/* A slot that joins must publish anew. */
	v->published_slots &= ~(slots & ~v->source_slots);
	v->source_slots = slots;
	LWLockRelease(state_shared->lock);
}

/*
 * streamproc_state_publish_watermark
 *		A slot's event times for the view's stream; returns the view's
 *		watermark, and sets *advanced when this call moved it.
 *
 * The inputs' time is the least of the log's time (the greatest event time
 * in any shard: the log is one input, its shards are split among workers
 * only to share the work) and of each active Kafka partition's greatest
 * event time; idle inputs do not count, and when every input is idle the
 * greatest event time of all is taken, so that windows close once a
 * stream goes quiet.  The watermark is that time minus delay, moved only
 * once every slot that reads a Kafka source of the stream has published.
 */
TimestampTz
streamproc_state_publish_watermark(ViewState *vs, int slot, const SlotEventTimes *times,
								   int64 delay, bool *advanced)
{
	ViewShared *v = &vs->shared;
	TimestampTz result;
	TimestampTz log_time = DT_NOBEGIN;
	TimestampTz kafka_least = DT_NOEND;
	TimestampTz greatest = DT_NOBEGIN;
	bool log_active = false;
	bool kafka_active = false;
	bool seen = false;
	int i;

	*advanced = false;
	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v->published_slots |= UINT64CONST(1) << slot;
	v->times[slot] = *times;
	for (i = 0; i < STREAMPROC_MAX_SLOTS; i++)
	{
		const SlotEventTimes *t = &v->times[i];

		if ((v->published_slots & (UINT64CONST(1) << i)) == 0)
			continue;
		if (t->log_seen)
			log_time = Max(log_time, t->log_time);
		log_active |= t->log_active;
		if (t->kafka_active)
		{
			kafka_least = Min(kafka_least, t->kafka_least);
			kafka_active = true;
		}
		greatest = Max(greatest, t->greatest);
		seen |= t->log_seen || t->kafka_active || t->greatest != DT_NOBEGIN;
	}
	if (seen && (v->source_slots & ~v->published_slots) == 0)
	{
		TimestampTz least;
		TimestampTz mark;

		if (log_active || kafka_active)
			least = Min(log_active ? log_time : DT_NOEND, kafka_active ? kafka_least : DT_NOEND);
		else
			least = greatest;
		if (!TIMESTAMP_NOT_FINITE(least) && !pg_sub_s64_overflow(least, delay, &mark) &&
			IS_VALID_TIMESTAMP(mark) && mark > v->watermark)
		{
			v->watermark = mark;
			*advanced = true;
		}
	}
	result = v->watermark;
	LWLockRelease(state_shared->lock);
	return result;
}

/*
 * streamproc_state_windows_settled
 *		Whether every slot below nslots that holds windows of a windowed view
 *		of a database (a writer) has closed them at the view's watermark
 *		(sync() waits for it: one worker's events can move the watermark
 *		that closes another's windows).
 */
bool
streamproc_state_windows_settled(Oid dbid, int nslots)
{
	bool settled = true;
	int i;
	int s;

	LWLockAcquire(state_shared->lock, LW_SHARED);
	for (i = 0; i < state_shared->max_views && settled; i++)
	{
		ViewShared *v = &state_shared->views[i];

		if (v->dbid != dbid || v->watermark == DT_NOBEGIN)
			continue;
		for (s = 0; s < nslots && s < STREAMPROC_MAX_SLOTS; s++)
			if ((v->writers & (UINT64CONST(1) << s)) && v->closed[s] < v->watermark)
				settled = false;
	}
	LWLockRelease(state_shared->lock);
	return settled;
}

TimestampTz
streamproc_state_watermark(ViewState *vs)
{
	TimestampTz result;

	LWLockAcquire(state_shared->lock, LW_SHARED);
	result = vs->shared.watermark;
	LWLockRelease(state_shared->lock);
	return result;
}

/*
 * streamproc_state_begin_closing, streamproc_state_end_closing
 *		Around removing the windows a committed checkpoint closed from shared
 *		memory: end_closing publishes the slot's new closing watermark.
 *		Readers of the view wait meanwhile (windows_lock).  A slot's own
 *		count windows close at the checkpoint's time, which may be below the
 *		view's watermark; only watermarks raise it.
 */
void
streamproc_state_begin_closing(ViewState *vs)
{
	LWLockAcquire(&vs->shared.windows_lock, LW_EXCLUSIVE);
}

void
streamproc_state_end_closing(ViewState *vs, int slot, TimestampTz closed)
{
	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	vs->shared.closed[slot] = closed;
	LWLockRelease(state_shared->lock);
	LWLockRelease(&vs->shared.windows_lock);
}

bool
streamproc_state_info(Oid dbid, Oid viewid, ViewStateInfo *info)
{
	ViewShared *v;
	uint64 all = streamproc_workers >= 64 ? ~UINT64CONST(0)
										  : (UINT64CONST(1) << streamproc_workers) - 1;
	int i;

	memset(info, 0, sizeof(ViewStateInfo));
	register_tranches();
	LWLockAcquire(state_shared->lock, LW_SHARED);
	v = lookup(dbid, viewid);
	if (v != NULL)
	{
		info->found = true;
		info->ready = (v->loaded & all) == all;
		info->map = v->map;
		info->load_generation = v->load_generation;
		info->events = v->events;
		info->errors = v->errors;
		info->late_events = v->late_events;
		info->last_checkpoint = v->last_checkpoint;
		info->last_checkpoint_ms = v->last_checkpoint_ms;
		info->watermark = v->watermark;
		info->writers = v->writers;
		memcpy(info->closed, v->closed, sizeof(info->closed));
		info->status = VIEW_SLOT_IDLE;
		for (i = 0; i < STREAMPROC_MAX_SLOTS; i++)
			info->status = Max(info->status, (ViewSlotStatus)v->status[i]);
		strlcpy(info->last_error, v->last_error, VIEW_ERROR_LEN);
	}
	LWLockRelease(state_shared->lock);
	if (info->found)
	{
		GroupMap *map = streamproc_state_read_map(info);

		info->groups = groupmap_groups(map);
		info->memory = groupmap_bytes(map);
		groupmap_detach(map);
	}
	return info->found;
}

/*
 * streamproc_state_read_map
 *		Attach to the map of a view found by streamproc_state_info().  The
 *		caller holds a lock on the view, so the map cannot go away.
 */
GroupMap *
streamproc_state_read_map(const ViewStateInfo *info)
{
	return groupmap_attach(streamproc_state_area(), info->map, &state_shared->memory);
}

uint64
streamproc_state_load_generation(Oid dbid, Oid viewid)
{
	ViewShared *v;
	uint64 result = 0;

	LWLockAcquire(state_shared->lock, LW_SHARED);
	v = lookup(dbid, viewid);
	if (v != NULL)
		result = v->load_generation;
	LWLockRelease(state_shared->lock);
	return result;
}

void
streamproc_state_lock_windows(Oid dbid, Oid viewid)
{
	ViewShared *v;

	/* An error since the last call released it (LWLockReleaseAll). */
	if (held_windows_lock != NULL && !LWLockHeldByMe(held_windows_lock))
		held_windows_lock = NULL;
	Assert(held_windows_lock == NULL);
	register_tranches();
	LWLockAcquire(state_shared->lock, LW_SHARED);
	v = lookup(dbid, viewid);
	LWLockRelease(state_shared->lock);
	if (v == NULL)
		return;
	/* The entry cannot be reused: the caller holds a lock on the view. */
	LWLockAcquire(&v->windows_lock, LW_SHARED);
	held_windows_lock = &v->windows_lock;
}

void
streamproc_state_unlock_windows(void)
{
	if (held_windows_lock != NULL && LWLockHeldByMe(held_windows_lock))
		LWLockRelease(held_windows_lock);
	held_windows_lock = NULL;
}
