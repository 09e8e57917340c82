/*-------------------------------------------------------------------------
 *
 * state.c
 *	  Shared-memory state of continuous views.
 *
 * Each aggregating continuous view keeps one entry per group in a dshash
 * table that lives in a DSA area shared by the whole server.  The entry's
 * key is the group key, serialized by the worker (see worker.c); the entry
 * holds one packed partial-aggregate state per state slot (ingest worker).
 * A worker only ever writes its own slot (single writer per slot); readers
 * combine the slots of a group when they read.  A view's dshash handle and
 * its statistics live in the view registry, a fixed array in the main
 * shared memory segment sized by streamproc.max_views.
 *
 * Keys are variable length, but dshash needs fixed-size keys: a StateKey
 * holds the key's hash and length and either a pointer to the bytes in
 * local memory (a search key) or a dsa_pointer to the bytes in the area (a
 * stored key).  The compare function resolves both forms.
 *
 * Packed states are bytea values (varlena header included) copied into the
 * area: the same bytes the checkpoint writes to streamproc.view_state.
 *
 * Every ingest worker of the database registers every view and loads its
 * own slot from the checkpoint, whether or not it feeds the view: a slot
 * written before a restart (a Kafka source's second worker, a paused
 * source) must be in memory for readers.  ViewShared.loaded has a bit per
 * slot; readers use the shared state only when every slot is loaded, and
 * read the checkpoint tables before.  The state is destroyed by the last
 * worker that forgets the view (ViewShared.attached): destroying it
 * earlier could pull the group table from under another worker's writes.
 *
 * Locking:
 *	- The registry array and every ViewShared field are protected by the
 *	  first LWLock of the "streamproc" tranche (streamproc_state_lock()).
 *	  Creating and destroying a view's dshash table happens with it held
 *	  exclusively; a reader holds it shared while it scans a view, so the
 *	  table cannot be destroyed under it.
 *	- Group entries are protected by dshash's partition locks: a worker
 *	  replaces its slot's state with the partition lock held exclusively,
 *	  readers copy entries under a shared partition lock, so a reader never
 *	  sees half of an update.
 *	- The DSA handle is set once, with the registry lock held exclusively.
 *	- Memory accounting is a single atomic counter.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "state.h"
#include "streamproc.h"

/* Shared part of this module, in the main shared memory segment. */
typedef struct StateShared
{
	LWLock *lock;            /* see header comment; set at startup */
	int dsa_tranche;         /* tranche of the area's locks */
	int hash_tranche;        /* tranche of the dshash partition locks */
	dsa_handle area;         /* DSM_HANDLE_INVALID until first use */
	pg_atomic_uint64 memory; /* bytes of keys and states in the area */
	int max_views;
	ViewShared views[FLEXIBLE_ARRAY_MEMBER];
} StateShared;

/*
 * Group key as stored in the dshash entry (and as passed to look-ups).
 */
typedef struct StateKey
{
	uint32 hash;
	uint32 len;
	dsa_pointer dp;    /* stored keys: the bytes in the area */
	const char *local; /* search keys: the bytes in local memory */
} StateKey;

typedef struct StateEntry
{
	StateKey key;
	dsa_pointer slots[FLEXIBLE_ARRAY_MEMBER]; /* packed state per slot */
} StateEntry;

static StateShared *state_shared = NULL;

/* This backend's attachment to the area, for the rest of the session. */
static dsa_area *state_area = NULL;

static int state_key_compare(const void *a, const void *b, size_t size,
							 void *arg);
static dshash_hash state_key_hash(const void *key, size_t size, void *arg);
static dshash_parameters state_params(void);

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
		state_shared->hash_tranche = LWLockNewTrancheId();
		state_shared->area = DSM_HANDLE_INVALID;
		pg_atomic_init_u64(&state_shared->memory, 0);
		state_shared->max_views = streamproc_max_views;
	}
}

LWLock *
streamproc_state_lock(void)
{
	return state_shared->lock;
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

	LWLockRegisterTranche(state_shared->dsa_tranche, "streamproc_state_area");
	LWLockRegisterTranche(state_shared->hash_tranche, "streamproc_state_groups");

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

int64
streamproc_state_memory_used(void)
{
	return (int64)pg_atomic_read_u64(&state_shared->memory);
}

static const char *
state_key_bytes(const StateKey *key, dsa_area *area)
{
	if (key->local != NULL)
		return key->local;
	return dsa_get_address(area, key->dp);
}

static int
state_key_compare(const void *a, const void *b, size_t size, void *arg)
{
	const StateKey *ka = a;
	const StateKey *kb = b;

	if (ka->hash != kb->hash || ka->len != kb->len)
		return 1;
	if (ka->len == 0)
		return 0;
	return memcmp(state_key_bytes(ka, arg), state_key_bytes(kb, arg), ka->len);
}

static dshash_hash
state_key_hash(const void *key, size_t size, void *arg)
{
	return ((const StateKey *)key)->hash;
}

static dshash_parameters
state_params(void)
{
	dshash_parameters params;

	params.key_size = sizeof(StateKey);
	params.entry_size = add_size(offsetof(StateEntry, slots),
								 mul_size(streamproc_workers, sizeof(dsa_pointer)));
	params.compare_function = state_key_compare;
	params.hash_function = state_key_hash;
	params.tranche_id = state_shared->hash_tranche;
	return params;
}

/*
 * streamproc_state_lookup
 *		The registry entry of a view, or NULL.  Caller holds the registry
 *		lock (shared is enough).
 */
ViewShared *
streamproc_state_lookup(Oid dbid, Oid viewid)
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
 *		Find or create the registry entry and the group table of a view, and
 *		mark it attached by a worker slot.  Caller holds the registry lock
 *		exclusively.
 */
ViewShared *
streamproc_state_register(Oid dbid, Oid viewid, int slot)
{
	ViewShared *v = streamproc_state_lookup(dbid, viewid);
	dshash_parameters params = state_params();
	dshash_table *groups;
	int i;

	if (v != NULL)
	{
		v->attached |= UINT64CONST(1) << slot;
		return v;
	}

	for (i = 0; i < state_shared->max_views; i++)
	{
		if (state_shared->views[i].dbid == InvalidOid)
		{
			v = &state_shared->views[i];
			break;
		}
	}
	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many continuous views"),
				 errdetail("The server keeps the state of at most %d continuous views.",
						   state_shared->max_views),
				 errhint("Increase \"streamproc.max_views\" and restart the server.")));

	groups = dshash_create(streamproc_state_area(), &params,
						   streamproc_state_area());
	memset(v, 0, sizeof(ViewShared));
	v->dbid = dbid;
	v->viewid = viewid;
	v->groups = dshash_get_hash_table_handle(groups);
	v->attached = UINT64CONST(1) << slot;
	v->loaded = 0;
	v->watermark = DT_NOBEGIN;
	for (i = 0; i < STREAMPROC_MAX_SLOTS; i++)
		v->closed[i] = DT_NOBEGIN;
	dshash_detach(groups);
	return v;
}

/*
 * streamproc_state_ready
 *		Has every worker slot been loaded from the checkpoint?  Caller holds
 *		the registry lock.
 */
bool
streamproc_state_ready(ViewShared *view)
{
	uint64 all = streamproc_workers >= 64 ? ~UINT64CONST(0)
										  : (UINT64CONST(1) << streamproc_workers) - 1;

	return (view->loaded & all) == all;
}

/*
 * streamproc_state_attach_groups
 *		Attach to a view's group table.  Caller holds the registry lock
 *		(any mode) until it detaches.
 */
dshash_table *
streamproc_state_attach_groups(ViewShared *view)
{
	dshash_parameters params = state_params();

	return dshash_attach(streamproc_state_area(), &params, view->groups,
						 streamproc_state_area());
}

/* Free one entry's key and the given slots' states; return bytes freed. */
static int64
state_free_entry(dsa_area *area, StateEntry *entry, int slot)
{
	int64 freed = 0;
	int i;

	for (i = 0; i < streamproc_workers; i++)
	{
		if ((slot < 0 || slot == i) && DsaPointerIsValid(entry->slots[i]))
		{
			freed += VARSIZE(dsa_get_address(area, entry->slots[i]));
			dsa_free(area, entry->slots[i]);
			entry->slots[i] = InvalidDsaPointer;
		}
	}
	return freed;
}

static bool
state_entry_empty(StateEntry *entry)
{
	int i;

	for (i = 0; i < streamproc_workers; i++)
		if (DsaPointerIsValid(entry->slots[i]))
			return false;
	return true;
}

/*
 * streamproc_state_reset_slot
 *		Remove one slot's states from every group (slot < 0: all slots),
 *		deleting groups left without state.  Used when a worker starts (its
 *		slot is reloaded from the checkpoint) and when a view is dropped.
 *		Caller holds the registry lock exclusively.
 */
void
streamproc_state_reset_slot(dshash_table *groups, ViewShared *view, int slot)
{
	dsa_area *area = streamproc_state_area();
	dshash_seq_status status;
	StateEntry *entry;
	int64 freed = 0;
	int64 deleted = 0;

	dshash_seq_init(&status, groups, true);
	while ((entry = dshash_seq_next(&status)) != NULL)
	{
		freed += state_free_entry(area, entry, slot);
		if (state_entry_empty(entry))
		{
			if (DsaPointerIsValid(entry->key.dp))
			{
				freed += entry->key.len;
				dsa_free(area, entry->key.dp);
			}
			dshash_delete_current(&status);
			deleted++;
		}
	}
	dshash_seq_term(&status);

	pg_atomic_sub_fetch_u64(&state_shared->memory, freed);
	view->memory -= freed;
	view->groups_count -= deleted;
}

/*
 * streamproc_state_forget
 *		A worker slot is done with a view (dropped, or its database is going
 *		away): free the slot's states, and destroy the view's state and
 *		registry entry if no other slot is attached.  Takes the registry
 *		lock.
 */
void
streamproc_state_forget(Oid dbid, Oid viewid, int slot)
{
	ViewShared *v;
	dshash_table *groups;

	LWLockAcquire(state_shared->lock, LW_EXCLUSIVE);
	v = streamproc_state_lookup(dbid, viewid);
	if (v != NULL)
	{
		v->attached &= ~(UINT64CONST(1) << slot);
		v->loaded &= ~(UINT64CONST(1) << slot);
		groups = streamproc_state_attach_groups(v);
		if (v->attached != 0)
		{
			streamproc_state_reset_slot(groups, v, slot);
			dshash_detach(groups);
		}
		else
		{
			streamproc_state_reset_slot(groups, v, -1);
			dshash_destroy(groups);
			memset(v, 0, sizeof(ViewShared));
		}
	}
	LWLockRelease(state_shared->lock);
}

/*
 * streamproc_state_registered_views
 *		The views of a database that have state in shared memory, those a
 *		worker slot is attached to or, with slot < 0, all.
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

/* A search key for dshash look-ups of a group key in local memory. */
static void
search_key(StateKey *search, const char *key, uint32 keylen)
{
	search->hash = hash_bytes((const unsigned char *)key, keylen);
	search->len = keylen;
	search->dp = InvalidDsaPointer;
	search->local = key;
}

/*
 * streamproc_state_fetch
 *		A palloc'd copy of one slot's packed state of a group, or NULL.
 */
bytea *
streamproc_state_fetch(dshash_table *groups, const char *key, uint32 keylen,
					   int slot)
{
	StateKey search;
	StateEntry *entry;
	bytea *result = NULL;

	search_key(&search, key, keylen);

	entry = dshash_find(groups, &search, false);
	if (entry == NULL)
		return NULL;
	if (DsaPointerIsValid(entry->slots[slot]))
	{
		bytea *stored = dsa_get_address(streamproc_state_area(),
										entry->slots[slot]);

		result = palloc(VARSIZE(stored));
		memcpy(result, stored, VARSIZE(stored));
	}
	dshash_release_lock(groups, entry);
	return result;
}

/*
 * streamproc_state_store
 *		Replace one slot's packed state of a group, creating the group if
 *		needed.  Returns the change in bytes used; *new_group tells whether
 *		the group was created.  Only the slot's owner calls this.
 */
int64
streamproc_state_store(dshash_table *groups, const char *key, uint32 keylen,
					   int slot, bytea *state, bool *new_group)
{
	dsa_area *area = streamproc_state_area();
	StateKey search;
	StateEntry *entry;
	bool found;
	dsa_pointer dp;
	int64 delta = 0;
	int i;

	/* Allocate before locking: dsa_allocate may take its own locks. */
	dp = dsa_allocate(area, VARSIZE(state));
	memcpy(dsa_get_address(area, dp), state, VARSIZE(state));
	delta += VARSIZE(state);

	search_key(&search, key, keylen);

	entry = dshash_find_or_insert(groups, &search, &found);
	if (!found)
	{
		if (keylen > 0)
		{
			entry->key.dp = dsa_allocate(area, keylen);
			memcpy(dsa_get_address(area, entry->key.dp), key, keylen);
			delta += keylen;
		}
		else
			entry->key.dp = InvalidDsaPointer;
		entry->key.local = NULL;
		for (i = 0; i < streamproc_workers; i++)
			entry->slots[i] = InvalidDsaPointer;
	}
	if (DsaPointerIsValid(entry->slots[slot]))
	{
		delta -= VARSIZE(dsa_get_address(area, entry->slots[slot]));
		dsa_free(area, entry->slots[slot]);
	}
	entry->slots[slot] = dp;
	dshash_release_lock(groups, entry);

	if (delta >= 0)
		pg_atomic_add_fetch_u64(&state_shared->memory, delta);
	else
		pg_atomic_sub_fetch_u64(&state_shared->memory, -delta);
	*new_group = !found;
	return delta;
}

/*
 * streamproc_state_remove
 *		Remove one slot's state of a group (a window that closed), deleting
 *		the group when no slot has state left (*deleted).  Returns the bytes
 *		freed.  Only the slot's owner calls this.
 */
int64
streamproc_state_remove(dshash_table *groups, const char *key, uint32 keylen,
						int slot, bool *deleted)
{
	dsa_area *area = streamproc_state_area();
	StateKey search;
	StateEntry *entry;
	int64 freed;

	*deleted = false;
	search_key(&search, key, keylen);

	entry = dshash_find(groups, &search, true);
	if (entry == NULL)
		return 0;
	freed = state_free_entry(area, entry, slot);
	if (state_entry_empty(entry))
	{
		if (DsaPointerIsValid(entry->key.dp))
		{
			freed += entry->key.len;
			dsa_free(area, entry->key.dp);
		}
		dshash_delete_entry(groups, entry);
		*deleted = true;
	}
	else
		dshash_release_lock(groups, entry);
	pg_atomic_sub_fetch_u64(&state_shared->memory, freed);
	return freed;
}

/* One group copied out of shared memory by streamproc_state_scan. */
typedef struct ScannedGroup
{
	char *key;
	uint32 keylen;
	bytea **slots;
} ScannedGroup;

/*
 * streamproc_state_scan
 *		Call cb for every group of a view with copies of its key and of each
 *		slot's state (NULL where a slot has none).  The copies are made under
 *		the partition locks and the callbacks run after the scan, so they may
 *		run arbitrary code.  Caller holds the registry lock (shared).
 */
void
streamproc_state_scan(dshash_table *groups, StateScanCallback cb, void *arg)
{
	dsa_area *area = streamproc_state_area();
	dshash_seq_status status;
	StateEntry *entry;
	List *copies = NIL;
	ListCell *lc;
	int i;

	dshash_seq_init(&status, groups, false);
	while ((entry = dshash_seq_next(&status)) != NULL)
	{
		ScannedGroup *g = palloc(sizeof(ScannedGroup));

		g->keylen = entry->key.len;
		g->key = palloc(Max(g->keylen, 1));
		if (g->keylen > 0)
			memcpy(g->key, dsa_get_address(area, entry->key.dp), g->keylen);
		g->slots = palloc0(sizeof(bytea *) * streamproc_workers);
		for (i = 0; i < streamproc_workers; i++)
		{
			if (DsaPointerIsValid(entry->slots[i]))
			{
				bytea *stored = dsa_get_address(area, entry->slots[i]);

				g->slots[i] = palloc(VARSIZE(stored));
				memcpy(g->slots[i], stored, VARSIZE(stored));
			}
		}
		copies = lappend(copies, g);
	}
	dshash_seq_term(&status);

	foreach (lc, copies)
	{
		ScannedGroup *g = lfirst(lc);

		cb(g->key, g->keylen, g->slots, streamproc_workers, arg);
	}
}
