/*-------------------------------------------------------------------------
 *
 * dedup.c
 *	  Deduplication of a stream's events by key: the stream options
 *	  dedup_key and dedup_window.
 *
 * A stream with dedup_key drops, before any of its views sees it, every
 * event whose key an earlier event within the window already had, whether
 * the copies came through SQL, one Kafka partition or another, one worker
 * or another.
 *
 * Claims.  The first event with a key *claims* it: the stream's set of
 * keys (a group map in the shared DSA area, groupmap.c, one per stream)
 * maps the key to the claim: the event's identity (DedupId: a log row by
 * shard, inserting transaction and ctid, a Kafka message by source,
 * partition and offset) and its time.  An event is admitted when nobody
 * claimed its key, when the claim is its own, or when the claim is older
 * than the window (it takes the key over), and dropped otherwise.  Because
 * the answer depends only on the event's identity, it is the same for
 * every view of the stream, whenever each reads the event, and for an
 * event read again after a failed batch or a restart (its own claim admits
 * it again).  Which copy wins is not defined: copies are meant to be equal.
 *
 * Where the decision is made.  Only ingest workers decide, and only over
 * input that is committed (log rows visible in a batch's snapshot) or
 * durable (Kafka messages), so a rolled-back insert never claims a key.
 * Log batches call streamproc._dedup() in their query, one level above
 * the bounds of the batch (view.c; the late rows of windowed views alike,
 * catalog.c), for each row; Kafka batches call dedup_admit_row() once per
 * parsed row, before the views run.
 *
 * Exactly once.  A claim is durable once a checkpoint appended it to
 * streamproc.dedup_runs: each checkpoint writes the claims it lists as
 * runs (one row per DEDUP_RUN_BYTES of claims, the format below), so a
 * claim costs its bytes and no heap tuple or index entry of its own.  A
 * key may be in several runs; the latest claim wins when the set is
 * loaded.  A worker lists a claim for its next checkpoint when it makes
 * it, or when it admits an event under a claim that is not yet durable and
 * that another attachment listed.  The claim names its lister (the
 * attachment's token and worker slot) and the lister's checkpoint that
 * writes it; each attachment publishes its token and the number of its
 * last committed checkpoint in the stream's entry (listers), so a claim
 * is durable when it was loaded from the table or when its lister, still
 * attached, has committed that checkpoint.  A worker lists a claim once
 * however many views read the event, and a restarted worker (a new token)
 * lists again what its predecessor may not have written; nothing is
 * looked up again after a commit.  So any checkpoint that commits a view's
 * position past an admitted event also commits its claim, or the claim is
 * already durable.  After a crash the set is reloaded from the table; a
 * claim that was lost belongs to an event no view has checkpointed past,
 * which is read again and claims its key again (or finds that another
 * copy did, which is as good: one copy counts).  A duplicate dropped by a
 * committed checkpoint stays dropped.
 *
 * The window.  Claims older than dedup_window are forgotten, in memory
 * and in the table, by the checkpoint of whichever worker finds the
 * stream due (every tenth of the window, at least every second, at most
 * every minute; an idle worker checkpoints for it): a run is deleted once
 * its latest claim expired, and the table is vacuumed once the runs
 * deleted held a quarter of the keys held.  Age is event
 * time when the stream has an event_time (measured from the greatest
 * event time claimed, but never from beyond the clock, so one event
 * stamped in the future cannot expire every key), otherwise the time the
 * event was first processed.  Nothing expires while a view of the stream
 * is stopped in any worker (holders): when it catches up it must find the
 * claims the other views found.
 *
 * Runs.  Not statestore.c's run format (varints, key and packed state):
 * a claims run is a sequence of entries in network byte order, so that
 * SQL can read and write them too (the update from 0.3, restores): uint32
 * key length, the key (groupkey.c's encoding of the key columns), the
 * claim's DedupId (17 bytes), int64 time (a timestamptz).
 * streamproc._dedup_run_entries() lists a run's entries, and the view
 * streamproc.dedup_keys every stream's.
 *
 * Counting.  The duplicates of a key (up to DUP_RING of them) are kept with
 * it so that each is counted once however many views read it;
 * stat_streams.duplicates is the sum since the server started.
 *
 * Shared state and locking.  The registry (DedupRegistry, in the main
 * shared memory segment) is protected by its LWLock (the fourth of the
 * "streamproc" tranche): entries are created, reset and freed under it,
 * and next_expiry is read and set under it.  An entry's set is loaded once
 * per server start under its load_lock, which the other workers wait on.
 * The set's partitions have the group map's locks: a claim is looked up
 * and changed with its partition locked exclusively, so two workers cannot
 * both claim a key.  duplicates, max_time, holders and listers are
 * atomics; an attachment writes only its own slot of listers.  A
 * freed entry keeps its (emptied) map for the next stream, and its
 * generation changes, which the workers that still hold it notice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/itemptr.h"
#include "utils/tuplestore.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "dedup.h"
#include "groupkey.h"
#include "groupmap.h"
#include "state.h"
#include "stream.h"
#include "streamproc.h"

PG_FUNCTION_INFO_V1(streamproc_dedup);
PG_FUNCTION_INFO_V1(streamproc_dedup_stats);
PG_FUNCTION_INFO_V1(streamproc_dedup_run_entries);

/* A claim, the slot-0 state of a key in the set (40 bytes). */
typedef struct DedupClaim
{
	DedupId id;
	uint8 slot; /* the lister's worker slot (mod 64) */
	uint32 seq; /* the lister's checkpoint that writes it */
	TimestampTz time;
	uint32 lister; /* token of the attachment that listed it last; 0: loaded */
} DedupClaim;

/* DedupShared.listers[slot]: an attachment's token and committed checkpoint. */
#define LISTER(token, seq) (((uint64)(token) << 32) | (uint64)(seq))
#define LISTER_TOKEN(l)    ((uint32)((l) >> 32))
#define LISTER_SEQ(l)      ((uint32)(l))
#define LISTER_SLOTS       64

#define CLAIM_SLOT 0
#define DUPS_SLOT  1 /* the ids of duplicates counted, newest last */
#define DUP_RING   32

/* Bytes of claims a row of streamproc.dedup_runs holds at most. */
#define DEDUP_RUN_BYTES (8 * 1024 * 1024)

/* An entry of a run, as read. */
typedef struct RunEntry
{
	const char *key;
	uint32 keylen;
	const char *id; /* DEDUP_ID_LEN bytes */
	TimestampTz time;
} RunEntry;

typedef struct DedupShared
{
	Oid dbid;
	Oid stream;    /* InvalidOid: free */
	uint32 config; /* hash of the key and time columns */
	uint64 generation;
	bool loaded;
	dsa_pointer map; /* InvalidDsaPointer until first used */
	TimestampTz next_expiry;
	LWLock load_lock;
	pg_atomic_uint64 duplicates;
	pg_atomic_uint64 max_time;              /* TimestampTz with its sign bit flipped */
	pg_atomic_uint64 holders;               /* workers with a stopped view of the stream */
	pg_atomic_uint64 listers[LISTER_SLOTS]; /* LISTER() per worker slot */
} DedupShared;

typedef struct DedupRegistry
{
	LWLock *lock;
	pg_atomic_uint32 next_token; /* for DedupStream.token */
	int load_tranche;
	int nentries;
	DedupShared entries[FLEXIBLE_ARRAY_MEMBER];
} DedupRegistry;

static DedupRegistry *registry = NULL;

struct DedupStream
{
	Oid stream;
	int entry;
	uint64 generation;
	GroupMap *map;
	int64 window;
	bool event_time;
	int worker;
	int ncols;
	AttrNumber *cols;     /* key columns of the stream */
	AttrNumber time_col;  /* 0: processing time */
	GroupKeyCodec *codec; /* over the key columns' types */
	MemoryContext cxt;
	StringInfoData touched; /* to write: uint32 length, key, DedupClaim */
	int64 ntouched;         /* entries in touched */
	int64 deleted;          /* claims expired since streamproc.dedup_runs was vacuumed */
	uint32 token;           /* this attachment's, for DedupClaim.lister */
	uint32 seq;             /* our next checkpoint, for DedupClaim.seq */
	uint32 written_seq;     /* the checkpoint in progress wrote up to ... */
	int written_upto;       /* ... these bytes of touched */
	StringInfoData buf;
	StringInfoData key;
};

/* Log tables of this worker's streams with dedup: shard log -> stream. */
typedef struct ShardEntry
{
	Oid shard_log;
	int shard;
	DedupStream *ds;
} ShardEntry;

static HTAB *shard_streams = NULL;

static uint64
time_bits(TimestampTz t)
{
	return ((uint64)t) ^ (UINT64CONST(1) << 63);
}

static TimestampTz
bits_time(uint64 b)
{
	return (TimestampTz)(b ^ (UINT64CONST(1) << 63));
}

Size
streamproc_dedup_shmem_size(void)
{
	return add_size(offsetof(DedupRegistry, entries),
					mul_size(streamproc_max_views, sizeof(DedupShared)));
}

void
streamproc_dedup_shmem_init(void)
{
	bool found;

	registry = ShmemInitStruct("streamproc dedup", streamproc_dedup_shmem_size(), &found);
	if (!found)
	{
		memset(registry, 0, streamproc_dedup_shmem_size());
		registry->lock = &(GetNamedLWLockTranche("streamproc"))[3].lock;
		registry->load_tranche = LWLockNewTrancheId();
		registry->nentries = streamproc_max_views;
		pg_atomic_init_u32(&registry->next_token, 1);
	}
}

static void
register_tranche(void)
{
	static bool done = false;

	if (!done)
		LWLockRegisterTranche(registry->load_tranche, "streamproc_dedup_load");
	done = true;
}

static uint32
config_hash(const AttrNumber *cols, int ncols, AttrNumber time_col)
{
	uint32 h = hash_bytes((const unsigned char *)cols, (int)(sizeof(AttrNumber) * ncols));

	return hash_combine(h, (uint32)time_col);
}

/* Empty an entry's set and mark it unloaded; the registry lock is held. */
static void
reset_entry(DedupShared *e)
{
	if (DsaPointerIsValid(e->map))
	{
		GroupMap *map = streamproc_state_map_at(e->map);

		groupmap_reset_slot(map, -1);
		groupmap_detach(map);
	}
	e->loaded = false;
	e->generation++;
	e->next_expiry = 0;
	pg_atomic_write_u64(&e->duplicates, 0);
	pg_atomic_write_u64(&e->max_time, time_bits(DT_NOBEGIN));
	pg_atomic_write_u64(&e->holders, 0);
	for (int i = 0; i < LISTER_SLOTS; i++)
		pg_atomic_write_u64(&e->listers[i], 0);
}

/* The stream's entry, created or reset as needed; returns its index. */
static int
find_entry(Oid stream, uint32 config)
{
	int free_entry = -1;
	int i;
	DedupShared *e;

	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (i = 0; i < registry->nentries; i++)
	{
		e = &registry->entries[i];
		if (e->stream == stream && e->dbid == MyDatabaseId)
		{
			if (e->config != config)
			{
				reset_entry(e);
				e->config = config;
			}
			LWLockRelease(registry->lock);
			return i;
		}
		if (!OidIsValid(e->stream) && (free_entry < 0 || DsaPointerIsValid(e->map)))
			free_entry = i;
	}
	if (free_entry < 0)
	{
		LWLockRelease(registry->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many streams with dedup_key"),
				 errhint("Raise streamproc.max_views, which also bounds the streams with dedup_key.")));
	}
	e = &registry->entries[free_entry];
	if (!DsaPointerIsValid(e->map))
	{
		LWLockInitialize(&e->load_lock, registry->load_tranche);
		pg_atomic_init_u64(&e->duplicates, 0);
		pg_atomic_init_u64(&e->max_time, 0);
		pg_atomic_init_u64(&e->holders, 0);
		for (i = 0; i < LISTER_SLOTS; i++)
			pg_atomic_init_u64(&e->listers[i], 0);
		e->map = streamproc_state_new_map();
	}
	reset_entry(e);
	e->dbid = MyDatabaseId;
	e->stream = stream;
	e->config = config;
	LWLockRelease(registry->lock);
	return free_entry;
}

static void
put_claim(GroupMap *map, uint32 hash, const char *key, uint32 keylen,
		  const DedupClaim *claim)
{
	bool was_dirty;
	bool created;

	(void)groupmap_put(map, hash, key, keylen, CLAIM_SLOT, (const char *)claim,
					   sizeof(DedupClaim), &was_dirty, &created);
}

static void
note_time(DedupShared *e, TimestampTz t)
{
	uint64 bits = time_bits(t);
	uint64 old = pg_atomic_read_u64(&e->max_time);

	while (old < bits)
		if (pg_atomic_compare_exchange_u64(&e->max_time, &old, bits))
			break;
}

/*
 * The next entry of a run at *pos (advanced), or false at its end.  A run
 * that does not parse is an error: the table was changed by hand.
 */
static bool
claims_run_next(const char *data, uint32 len, uint32 *pos, RunEntry *entry)
{
	uint32 keylen;
	uint64 time;

	if (*pos >= len)
		return false;
	if (len - *pos < sizeof(uint32))
		goto corrupt;
	memcpy(&keylen, data + *pos, sizeof(uint32));
	keylen = pg_ntoh32(keylen);
	if (keylen > len - *pos - sizeof(uint32) ||
		len - *pos - sizeof(uint32) - keylen < DEDUP_ID_LEN + sizeof(uint64))
		goto corrupt;
	entry->keylen = keylen;
	entry->key = data + *pos + sizeof(uint32);
	entry->id = entry->key + keylen;
	memcpy(&time, entry->id + DEDUP_ID_LEN, sizeof(uint64));
	entry->time = (TimestampTz)pg_ntoh64(time);
	*pos += sizeof(uint32) + keylen + DEDUP_ID_LEN + sizeof(uint64);
	return true;

corrupt:
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("a run of streamproc.dedup_runs is corrupted at byte %u of %u", *pos, len),
			 errhint("Delete the stream's rows of streamproc.dedup_runs; its copies may then count again within the window.")));
	return false; /* keep the compiler quiet */
}

/* Append an entry to a run being written. */
static void
claims_run_append(StringInfo run, const char *key, uint32 keylen, const DedupClaim *claim)
{
	uint32 n = pg_hton32(keylen);
	uint64 t = pg_hton64((uint64)claim->time);

	appendBinaryStringInfo(run, (const char *)&n, sizeof(uint32));
	appendBinaryStringInfo(run, key, keylen);
	appendBinaryStringInfo(run, claim->id.bytes, DEDUP_ID_LEN);
	appendBinaryStringInfo(run, (const char *)&t, sizeof(uint64));
}

/*
 * Load the stream's claims from streamproc.dedup_runs (SPI connected).  A
 * key in several runs (claimed again after it expired, or written by two
 * workers) takes the latest claim.
 */
static void
load_claims(DedupStream *ds, DedupShared *e)
{
	Datum arg = ObjectIdGetDatum(ds->stream);
	Portal portal;
	SPIPlanPtr plan;

	if (!OidIsValid(get_relname_relid("dedup_runs", get_namespace_oid("streamproc", false))))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stream \"%s\" has a dedup_key, and extension \"streamproc\" is older than its library",
						get_rel_name(ds->stream)),
				 errdetail("The claimed keys are kept in streamproc.dedup_runs since version 0.4."),
				 errhint("Run ALTER EXTENSION streamproc UPDATE; the stream's views wait until then.")));
	plan = SPI_prepare("SELECT data FROM streamproc.dedup_runs WHERE stream = $1",
					   1, (Oid[]){OIDOID});
	if (plan == NULL)
		elog(ERROR, "could not prepare the load of streamproc.dedup_runs: %s",
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, &arg, NULL, true);
	for (;;)
	{
		uint64 i;

		SPI_cursor_fetch(portal, true, 4);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			bool isnull;
			Datum raw = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			bytea *data = DatumGetByteaPP(raw);
			uint32 len = VARSIZE_ANY_EXHDR(data);
			uint32 pos = 0;
			RunEntry entry;

			while (claims_run_next(VARDATA_ANY(data), len, &pos, &entry))
			{
				DedupClaim claim;
				uint32 hash = groupmap_hash(entry.key, entry.keylen);

				/* lister 0: durable */
				memset(&claim, 0, sizeof(claim));
				memcpy(claim.id.bytes, entry.id, DEDUP_ID_LEN);
				claim.time = entry.time;
				note_time(e, claim.time);
				groupmap_lock_partition(ds->map, GROUPMAP_PARTITION(hash));
				resetStringInfo(&ds->buf);
				if (!groupmap_get_slot_locked(ds->map, hash, entry.key, entry.keylen, CLAIM_SLOT,
											  &ds->buf, NULL))
					(void)groupmap_put_new(ds->map, hash, entry.key, entry.keylen, CLAIM_SLOT,
										   (const char *)&claim, sizeof(DedupClaim));
				else if (((DedupClaim *)ds->buf.data)->time < claim.time)
					put_claim(ds->map, hash, entry.key, entry.keylen, &claim);
				groupmap_unlock_partition(ds->map, GROUPMAP_PARTITION(hash));
			}
			if ((Pointer)data != DatumGetPointer(raw))
				pfree(data);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
}

/*
 * dedup_open
 *		Attach an ingest worker to a stream's set of keys; called while it
 *		loads its catalog (a transaction, SPI connected).  columns are the
 *		names of the key columns, time_column the event time's (0: none),
 *		window the horizon in microseconds, worker our index.
 */
DedupStream *
dedup_open(Oid stream, TupleDesc desc, List *columns, AttrNumber time_column,
		   int64 window, int worker)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "streamproc dedup",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	DedupStream *ds = palloc0(sizeof(DedupStream));
	Oid *types;
	DedupShared *e;
	ListCell *lc;
	int i = 0;

	register_tranche();
	ds->cxt = cxt;
	ds->stream = stream;
	ds->window = window;
	ds->time_col = time_column;
	ds->event_time = time_column != InvalidAttrNumber;
	ds->worker = worker % 64;
	/* Unique per attachment (0 is for loaded claims). */
	do
		ds->token = pg_atomic_fetch_add_u32(&registry->next_token, 1);
	while (ds->token == 0);
	ds->seq = 1;
	ds->ncols = list_length(columns);
	ds->cols = palloc(sizeof(AttrNumber) * Max(ds->ncols, 1));
	types = palloc(sizeof(Oid) * Max(ds->ncols, 1));
	foreach (lc, columns)
	{
		AttrNumber att = get_attnum(stream, lfirst(lc));

		if (att == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("dedup_key column \"%s\" of stream \"%s\" does not exist",
							(char *)lfirst(lc), get_rel_name(stream))));
		ds->cols[i] = att;
		types[i] = TupleDescAttr(desc, att - 1)->atttypid;
		i++;
	}
	ds->codec = groupkey_codec_create(ds->ncols, types);
	initStringInfo(&ds->touched);
	initStringInfo(&ds->buf);
	initStringInfo(&ds->key);
	MemoryContextSwitchTo(old);

	ds->entry = find_entry(stream, config_hash(ds->cols, ds->ncols, time_column));
	e = &registry->entries[ds->entry];
	LWLockAcquire(registry->lock, LW_SHARED);
	ds->generation = e->generation;
	pg_atomic_write_u64(&e->listers[ds->worker], LISTER(ds->token, 0));
	old = MemoryContextSwitchTo(cxt);
	ds->map = streamproc_state_map_at(e->map);
	MemoryContextSwitchTo(old);
	LWLockRelease(registry->lock);

	LWLockAcquire(&e->load_lock, LW_EXCLUSIVE);
	if (!e->loaded)
	{
		TimestampTz start = GetCurrentTimestamp();

		load_claims(ds, e);
		e->loaded = true;
		/* Loads cost O(keys): say when they happen, as view loads do. */
		ereport(LOG,
				(errmsg("streamproc worker %d loaded %lld claimed keys of stream \"%s\" in %ld ms",
						worker, (long long)groupmap_groups(ds->map), get_rel_name(stream),
						(long)(TimestampDifferenceMilliseconds(start, GetCurrentTimestamp())))));
	}
	LWLockRelease(&e->load_lock);
	return ds;
}

void
dedup_add_shard(DedupStream *ds, Oid shard_log, int shard)
{
	ShardEntry *se;
	bool found;

	if (shard_streams == NULL)
	{
		HASHCTL ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ShardEntry);
		shard_streams = hash_create("streamproc dedup shards", 64, &ctl,
									HASH_ELEM | HASH_BLOBS);
	}
	se = hash_search(shard_streams, &shard_log, HASH_ENTER, &found);
	se->shard = shard;
	se->ds = ds;
}

void
dedup_close(DedupStream *ds)
{
	if (shard_streams != NULL)
	{
		HASH_SEQ_STATUS status;
		ShardEntry *se;

		hash_seq_init(&status, shard_streams);
		while ((se = hash_seq_search(&status)) != NULL)
			if (se->ds == ds)
				(void)hash_search(shard_streams, &se->shard_log, HASH_REMOVE, NULL);
	}
	groupmap_detach(ds->map);
	MemoryContextDelete(ds->cxt);
}

/*
 * dedup_forget_dropped
 *		Free the entries of this database's streams that no longer exist or
 *		no longer have dedup_key, except those in open (DedupStream *, the
 *		caller's).  The catalog is read afresh, so a stream created after
 *		the caller's snapshot is not mistaken for a dropped one.
 */
void
dedup_forget_dropped(List *open)
{
	int nentries = registry->nentries;
	Oid *candidates = palloc(sizeof(Oid) * nentries);
	uint64 *generations = palloc(sizeof(uint64) * nentries);
	int *entries = palloc(sizeof(int) * nentries);
	int n = 0;
	int i;

	/* Entries of ours that nobody here has open; the catalog is read unlocked. */
	LWLockAcquire(registry->lock, LW_SHARED);
	for (i = 0; i < nentries; i++)
	{
		DedupShared *e = &registry->entries[i];
		bool keep = false;
		ListCell *lc;

		if (!OidIsValid(e->stream) || e->dbid != MyDatabaseId)
			continue;
		foreach (lc, open)
			if (((DedupStream *)lfirst(lc))->stream == e->stream)
				keep = true;
		if (keep)
			continue;
		candidates[n] = e->stream;
		generations[n] = e->generation;
		entries[n++] = i;
	}
	LWLockRelease(registry->lock);

	for (i = 0; i < n; i++)
	{
		StreamOptions opts;
		DedupShared *e = &registry->entries[entries[i]];

		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(candidates[i])) &&
			streamproc_stream_options(candidates[i], &opts) && opts.dedup_key != NULL)
			continue;
		LWLockAcquire(registry->lock, LW_EXCLUSIVE);
		if (e->stream == candidates[i] && e->generation == generations[i])
		{
			reset_entry(e);
			e->stream = InvalidOid;
			e->dbid = InvalidOid;
		}
		LWLockRelease(registry->lock);
	}
	pfree(candidates);
	pfree(generations);
	pfree(entries);
}

/*
 * After a checkpoint: have it and the earlier ones deleted runs of
 * streamproc.dedup_runs with enough claims, a quarter of the keys held,
 * for a vacuum to be worth its scan?  Then the caller vacuums it, and the
 * count restarts.
 */
bool
dedup_vacuum_due(DedupStream *ds)
{
	int64 held = groupmap_groups(ds->map);

	if (ds->deleted < Max(10000, held / 4))
		return false;
	ds->deleted = 0;
	return true;
}

/* Is the stream due for forgetting its expired claims (no lock: a hint)? */
bool
dedup_expiry_due(DedupStream *ds)
{
	return GetCurrentTimestamp() >= registry->entries[ds->entry].next_expiry;
}

void
dedup_kafka_id(DedupId *id, const char *source, int32 partition, int64 offset)
{
	uint32 src = hash_bytes((const unsigned char *)source, (int)strlen(source));

	id->bytes[0] = 'k';
	memcpy(id->bytes + 1, &src, 4);
	memcpy(id->bytes + 5, &partition, 4);
	memcpy(id->bytes + 9, &offset, 8);
}

static void
log_id(DedupId *id, int shard, FullTransactionId xid, ItemPointer tid)
{
	uint16 s = (uint16)shard;
	uint64 x = U64FromFullTransactionId(xid);
	BlockNumber block = ItemPointerGetBlockNumberNoCheck(tid);
	OffsetNumber off = ItemPointerGetOffsetNumberNoCheck(tid);

	id->bytes[0] = 'l';
	memcpy(id->bytes + 1, &s, 2);
	memcpy(id->bytes + 3, &x, 8);
	memcpy(id->bytes + 11, &block, 4);
	memcpy(id->bytes + 15, &off, 2);
}

/* Count a duplicate once per event (the key's partition is locked). */
static void
count_duplicate(DedupStream *ds, DedupShared *e, uint32 hash, const char *key,
				uint32 keylen, const DedupId *id)
{
	StringInfo buf = &ds->buf;
	int n;
	int i;
	bool was_dirty;
	bool created;

	resetStringInfo(buf);
	(void)groupmap_get_slot_locked(ds->map, hash, key, keylen, DUPS_SLOT, buf, NULL);
	n = buf->len / DEDUP_ID_LEN;
	for (i = 0; i < n; i++)
		if (memcmp(buf->data + i * DEDUP_ID_LEN, id->bytes, DEDUP_ID_LEN) == 0)
			return;
	if (n >= DUP_RING)
	{
		memmove(buf->data, buf->data + DEDUP_ID_LEN, (n - 1) * DEDUP_ID_LEN);
		buf->len -= DEDUP_ID_LEN;
	}
	appendBinaryStringInfo(buf, id->bytes, DEDUP_ID_LEN);
	(void)groupmap_put(ds->map, hash, key, keylen, DUPS_SLOT, buf->data, buf->len,
					   &was_dirty, &created);
	pg_atomic_fetch_add_u64(&e->duplicates, 1);
}

/* List a key and its claim for the next checkpoint. */
static void
touch(DedupStream *ds, const char *key, uint32 keylen, const DedupClaim *claim)
{
	appendBinaryStringInfo(&ds->touched, (const char *)&keylen, sizeof(uint32));
	appendBinaryStringInfo(&ds->touched, key, keylen);
	appendBinaryStringInfo(&ds->touched, (const char *)claim, sizeof(DedupClaim));
	ds->ntouched++;
}

int64
dedup_listed(DedupStream *ds)
{
	return ds->ntouched;
}

/* Name us as the claim's lister, for our next checkpoint. */
static void
set_lister(DedupStream *ds, DedupClaim *claim)
{
	claim->lister = ds->token;
	claim->slot = (uint8)ds->worker;
	claim->seq = ds->seq;
}

/* Whether a claim is in streamproc.dedup_runs (see "Exactly once"). */
static bool
claim_durable(DedupShared *e, const DedupClaim *claim)
{
	uint64 l;

	if (claim->lister == 0)
		return true;
	l = pg_atomic_read_u64(&e->listers[claim->slot % LISTER_SLOTS]);
	return LISTER_TOKEN(l) == claim->lister && LISTER_SEQ(l) >= claim->seq;
}

/*
 * Claim a key for event id at time t (its partition is locked), and list
 * it; absent: the key is not in the set.
 */
static void
new_claim(DedupStream *ds, uint32 hash, const char *key, uint32 keylen,
		  const DedupId *id, TimestampTz t, bool absent)
{
	DedupClaim claim;

	memset(&claim, 0, sizeof(claim));
	claim.id = *id;
	claim.time = t;
	set_lister(ds, &claim);
	if (absent)
		(void)groupmap_put_new(ds->map, hash, key, keylen, CLAIM_SLOT, (const char *)&claim,
							   sizeof(DedupClaim));
	else
		put_claim(ds->map, hash, key, keylen, &claim);
	touch(ds, key, keylen, &claim);
}

/*
 * The time before which claims are forgotten, or DT_NOBEGIN: none is
 * while a view of the stream is stopped (it must find the claims the
 * others found when it reads the same events) or before any event time.
 */
static TimestampTz
expiry_cutoff(DedupStream *ds, DedupShared *e, TimestampTz now)
{
	TimestampTz cutoff = now;

	if (pg_atomic_read_u64(&e->holders) != 0)
		return DT_NOBEGIN;
	if (ds->event_time)
		cutoff = Min(now, bits_time(pg_atomic_read_u64(&e->max_time)));
	if (cutoff == DT_NOBEGIN)
		return DT_NOBEGIN;
	return cutoff - ds->window;
}

/*
 * admit
 *		Whether the event id with key (and event time t, or DT_NOBEGIN) is
 *		admitted: its key is unclaimed (it claims it now) or it claimed it.
 */
static bool
admit(DedupStream *ds, const char *key, uint32 keylen, const DedupId *id,
	  TimestampTz t)
{
	DedupShared *e = &registry->entries[ds->entry];
	uint32 hash = groupmap_hash(key, keylen);
	int part = GROUPMAP_PARTITION(hash);
	DedupClaim claim;
	bool result = true;

	if (e->generation != ds->generation || e->stream != ds->stream)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the deduplication state of stream \"%s\" was reset",
						get_rel_name(ds->stream)),
				 errhint("The worker reloads the stream and goes on.")));

	if (!ds->event_time || t == DT_NOBEGIN)
		t = GetCurrentTimestamp();

	groupmap_lock_partition(ds->map, part);
	resetStringInfo(&ds->buf);
	if (!groupmap_get_slot_locked(ds->map, hash, key, keylen, CLAIM_SLOT, &ds->buf, NULL))
		new_claim(ds, hash, key, keylen, id, t, true);
	else
	{
		memcpy(&claim, ds->buf.data, sizeof(claim));
		if (memcmp(claim.id.bytes, id->bytes, DEDUP_ID_LEN) == 0)
		{
			/* Not listed by us, and maybe not durable: list it. */
			if (claim.lister != ds->token && !claim_durable(e, &claim))
			{
				set_lister(ds, &claim);
				put_claim(ds->map, hash, key, keylen, &claim);
				touch(ds, key, keylen, &claim);
			}
		}
		else if (claim.time < expiry_cutoff(ds, e, GetCurrentTimestamp()))
		{
			/* Older than the window, not yet expired by a checkpoint. */
			bool existed;
			bool deleted;

			(void)groupmap_remove(ds->map, hash, key, keylen, DUPS_SLOT, &existed, &deleted);
			new_claim(ds, hash, key, keylen, id, t, false);
		}
		else
		{
			count_duplicate(ds, e, hash, key, keylen, id);
			result = false;
		}
	}
	groupmap_unlock_partition(ds->map, part);
	if (ds->event_time && result)
		note_time(e, t);
	return result;
}

/*
 * dedup_admit_row
 *		For a Kafka batch: whether a parsed row (values in the stream's
 *		attribute order) is admitted.  A key with a NULL is never a
 *		duplicate.
 */
bool
dedup_admit_row(DedupStream *ds, const Datum *values, const bool *nulls,
				const DedupId *id)
{
	Datum keys[64];
	bool keynulls[64];
	TimestampTz t = DT_NOBEGIN;
	int i;

	for (i = 0; i < ds->ncols; i++)
	{
		keys[i] = values[ds->cols[i] - 1];
		keynulls[i] = nulls[ds->cols[i] - 1];
		if (keynulls[i])
			return true;
	}
	if (ds->time_col != InvalidAttrNumber && !nulls[ds->time_col - 1])
		t = DatumGetTimestampTz(values[ds->time_col - 1]);
	resetStringInfo(&ds->key);
	groupkey_encode(ds->codec, keys, keynulls, &ds->key);
	return admit(ds, ds->key.data, ds->key.len, id, t);
}

/* What streamproc._dedup() keeps between calls of one query. */
typedef struct DedupCallCache
{
	Oid shard_log;
	int shard;
	DedupStream *ds;
	GroupKeyCodec *codec;
	StringInfoData key;
} DedupCallCache;

/*
 * streamproc._dedup(tableoid oid, ctid tid, xid xid8, ts timestamptz,
 *                   VARIADIC keys "any") RETURNS boolean
 *		In the log queries of a stream with dedup_key (view.c): whether the
 *		log row is admitted.  Ingest workers only.
 */
Datum
streamproc_dedup(PG_FUNCTION_ARGS)
{
	DedupCallCache *cache = fcinfo->flinfo->fn_extra;
	Oid shard_log;
	ItemPointer tid;
	DedupId id;
	Datum keys[64];
	bool keynulls[64];
	int nkeys = PG_NARGS() - 4;
	TimestampTz t = DT_NOBEGIN;
	int i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(true);
	shard_log = PG_GETARG_OID(0);
	if (cache == NULL || cache->shard_log != shard_log)
	{
		ShardEntry *se = shard_streams ? hash_search(shard_streams, &shard_log, HASH_FIND, NULL) : NULL;
		Oid types[64];

		if (se == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("streamproc._dedup() runs only in the queries of streamproc's ingest workers")));
		if (nkeys != se->ds->ncols || nkeys > 64)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the dedup_key of stream \"%s\" changed under a continuous view's query",
							get_rel_name(se->ds->stream))));
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(DedupCallCache));
		cache->shard_log = shard_log;
		cache->shard = se->shard;
		cache->ds = se->ds;
		for (i = 0; i < nkeys; i++)
			types[i] = get_fn_expr_argtype(fcinfo->flinfo, i + 4);
		{
			MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

			cache->codec = groupkey_codec_create(nkeys, types);
			initStringInfo(&cache->key);
			MemoryContextSwitchTo(old);
		}
		fcinfo->flinfo->fn_extra = cache;
	}
	for (i = 0; i < nkeys; i++)
	{
		keynulls[i] = PG_ARGISNULL(i + 4);
		if (keynulls[i])
			PG_RETURN_BOOL(true);
		keys[i] = PG_GETARG_DATUM(i + 4);
	}
	if (!PG_ARGISNULL(3))
		t = PG_GETARG_TIMESTAMPTZ(3);
	tid = (ItemPointer)PG_GETARG_POINTER(1);
	log_id(&id, cache->shard, PG_GETARG_FULLTRANSACTIONID(2), tid);
	resetStringInfo(&cache->key);
	groupkey_encode(cache->codec, keys, keynulls, &cache->key);
	PG_RETURN_BOOL(admit(cache->ds, cache->key.data, cache->key.len, &id, t));
}

/* Expiry: the keys of a partition whose claims are older than a cutoff. */
typedef struct ExpireArg
{
	TimestampTz cutoff;
	StringInfo keys; /* uint32 hash, uint32 length, bytes */
} ExpireArg;

static void
collect_expired(uint32 hash, const char *key, uint32 keylen, const char *state,
				uint32 statelen, void *arg)
{
	ExpireArg *ea = arg;
	DedupClaim claim;

	if (statelen != sizeof(DedupClaim))
		return;
	memcpy(&claim, state, sizeof(claim));
	if (claim.time >= ea->cutoff)
		return;
	appendBinaryStringInfo(ea->keys, (const char *)&hash, sizeof(uint32));
	appendBinaryStringInfo(ea->keys, (const char *)&keylen, sizeof(uint32));
	appendBinaryStringInfo(ea->keys, key, keylen);
}

/* Forget the claims older than the window, if the stream is due. */
static void
expire(DedupStream *ds)
{
	DedupShared *e = &registry->entries[ds->entry];
	TimestampTz now = GetCurrentTimestamp();
	int64 every = Min(Max(ds->window / 10, USECS_PER_SEC), 60 * USECS_PER_SEC);
	TimestampTz cutoff;
	ExpireArg ea;
	StringInfoData keys;
	Datum args[2];
	bool due;
	int part;
	uint64 i;

	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	due = now >= e->next_expiry;
	if (due)
		e->next_expiry = now + every;
	LWLockRelease(registry->lock);
	if (!due)
		return;

	cutoff = expiry_cutoff(ds, e, now);
	if (cutoff == DT_NOBEGIN)
		return;

	initStringInfo(&keys);
	ea.cutoff = cutoff;
	ea.keys = &keys;
	for (part = 0; part < GROUPMAP_PARTITIONS; part++)
	{
		int pos = 0;

		resetStringInfo(&keys);
		groupmap_lock_partition(ds->map, part);
		groupmap_visit_slot(ds->map, part, CLAIM_SLOT, collect_expired, &ea);
		while (pos < keys.len)
		{
			uint32 hash;
			uint32 keylen;
			bool existed;
			bool deleted;

			memcpy(&hash, keys.data + pos, sizeof(uint32));
			memcpy(&keylen, keys.data + pos + 4, sizeof(uint32));
			(void)groupmap_remove(ds->map, hash, keys.data + pos + 8, keylen, DUPS_SLOT,
								  &existed, &deleted);
			(void)groupmap_remove(ds->map, hash, keys.data + pos + 8, keylen, CLAIM_SLOT,
								  &existed, &deleted);
			pos += 8 + (int)keylen;
		}
		groupmap_unlock_partition(ds->map, part);
	}
	pfree(keys.data);

	/* Runs whose every claim expired. */
	args[0] = ObjectIdGetDatum(ds->stream);
	args[1] = TimestampTzGetDatum(cutoff);
	if (SPI_execute_with_args("DELETE FROM streamproc.dedup_runs WHERE stream = $1 AND max_ts < $2"
							  " RETURNING entries",
							  2, (Oid[]){OIDOID, TIMESTAMPTZOID}, args, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not expire runs of streamproc.dedup_runs");
	for (i = 0; i < SPI_processed; i++)
	{
		bool isnull;

		ds->deleted += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
												   1, &isnull));
	}
}

/* Append a run to streamproc.dedup_runs (SPI connected). */
static void
write_run(DedupStream *ds, StringInfo run, int32 entries, TimestampTz min_ts,
		  TimestampTz max_ts)
{
	bytea *data = palloc(VARHDRSZ + run->len);
	Datum args[5];
	int ret;

	SET_VARSIZE(data, VARHDRSZ + run->len);
	memcpy(VARDATA(data), run->data, run->len);
	args[0] = ObjectIdGetDatum(ds->stream);
	args[1] = Int32GetDatum(entries);
	args[2] = TimestampTzGetDatum(min_ts);
	args[3] = TimestampTzGetDatum(max_ts);
	args[4] = PointerGetDatum(data);
	ret = SPI_execute_with_args("INSERT INTO streamproc.dedup_runs (stream, entries, min_ts, max_ts, data)"
								" VALUES ($1, $2, $3, $4, $5)",
								5, (Oid[]){OIDOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, BYTEAOID},
								args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.dedup_runs: %s", SPI_result_code_string(ret));
	pfree(data);
}

/*
 * dedup_checkpoint
 *		In the checkpoint's transaction (SPI connected): append the claims
 *		this worker listed to streamproc.dedup_runs, and forget expired
 *		ones unless hold (a view of the stream is stopped in this worker)
 *		or another worker holds them.
 */
void
dedup_checkpoint(DedupStream *ds, bool hold)
{
	uint64 bit = UINT64CONST(1) << ds->worker;
	DedupShared *e = &registry->entries[ds->entry];
	StringInfoData run;
	int32 entries = 0;
	TimestampTz min_ts = DT_NOEND;
	TimestampTz max_ts = DT_NOBEGIN;
	int pos = 0;

	if (hold)
		pg_atomic_fetch_or_u64(&e->holders, bit);
	else
		pg_atomic_fetch_and_u64(&e->holders, ~bit);
	expire(ds);
	if (ds->ntouched == 0)
		return;

	initStringInfo(&run);
	while (pos < ds->touched.len)
	{
		uint32 keylen;
		const char *key;
		DedupClaim claim;

		memcpy(&keylen, ds->touched.data + pos, sizeof(uint32));
		key = ds->touched.data + pos + sizeof(uint32);
		memcpy(&claim, key + keylen, sizeof(claim));
		pos += sizeof(uint32) + keylen + sizeof(DedupClaim);

		if (run.len > 0 && run.len + keylen > DEDUP_RUN_BYTES)
		{
			write_run(ds, &run, entries, min_ts, max_ts);
			resetStringInfo(&run);
			entries = 0;
			min_ts = DT_NOEND;
			max_ts = DT_NOBEGIN;
		}
		claims_run_append(&run, key, keylen, &claim);
		entries++;
		min_ts = Min(min_ts, claim.time);
		max_ts = Max(max_ts, claim.time);
	}
	write_run(ds, &run, entries, min_ts, max_ts);
	pfree(run.data);
	ds->written_upto = pos;
	/* Claims listed from now on are for the next checkpoint. */
	ds->written_seq = ds->seq++;
}

/*
 * dedup_committed
 *		The checkpoint committed: the claims it wrote are durable.  We say
 *		so in the stream's entry, and forget them.
 */
void
dedup_committed(DedupStream *ds)
{
	DedupShared *e = &registry->entries[ds->entry];

	if (ds->written_upto == 0)
		return;
	pg_atomic_write_u64(&e->listers[ds->worker], LISTER(ds->token, ds->written_seq));
	/* What was listed after the checkpoint's write stays listed. */
	memmove(ds->touched.data, ds->touched.data + ds->written_upto,
			ds->touched.len - ds->written_upto);
	ds->touched.len -= ds->written_upto;
	ds->touched.data[ds->touched.len] = '\0';
	ds->ntouched = 0;
	for (int pos = 0; pos < ds->touched.len;)
	{
		uint32 keylen;

		memcpy(&keylen, ds->touched.data + pos, sizeof(uint32));
		pos += sizeof(uint32) + keylen + sizeof(DedupClaim);
		ds->ntouched++;
	}
	ds->written_upto = 0;
	if (ds->touched.len == 0 && ds->touched.maxlen > 64 * 1024 * 1024)
	{
		MemoryContext old = MemoryContextSwitchTo(ds->cxt);

		pfree(ds->touched.data);
		initStringInfo(&ds->touched);
		MemoryContextSwitchTo(old);
	}
}

/*
 * streamproc_dedup_memory_used
 *		The shared memory the sets of keys of every database take (they
 *		count in streamproc.state_memory), for the budget's messages.
 */
int64
streamproc_dedup_memory_used(void)
{
	int64 total = 0;
	int i;

	register_tranche();
	LWLockAcquire(registry->lock, LW_SHARED);
	for (i = 0; i < registry->nentries; i++)
	{
		DedupShared *e = &registry->entries[i];
		GroupMap *map;

		if (!OidIsValid(e->stream) || !DsaPointerIsValid(e->map))
			continue;
		map = streamproc_state_map_at(e->map);
		total += groupmap_bytes(map);
		groupmap_detach(map);
	}
	LWLockRelease(registry->lock);
	return total;
}

/*
 * streamproc._dedup_stats() RETURNS TABLE (stream oid, keys bigint,
 *     duplicates bigint, memory_bytes bigint)
 *		The streams of this database whose set of keys is in shared memory.
 */
Datum
streamproc_dedup_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	int i;

	streamproc_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);
	register_tranche();
	for (i = 0; i < registry->nentries; i++)
	{
		DedupShared *e = &registry->entries[i];
		Datum values[4];
		bool nulls[4] = {false, false, false, false};
		GroupMap *map;

		LWLockAcquire(registry->lock, LW_SHARED);
		if (e->dbid != MyDatabaseId || !OidIsValid(e->stream))
		{
			LWLockRelease(registry->lock);
			continue;
		}
		values[0] = ObjectIdGetDatum(e->stream);
		map = streamproc_state_map_at(e->map);
		values[1] = Int64GetDatum(groupmap_groups(map));
		values[2] = Int64GetDatum((int64)pg_atomic_read_u64(&e->duplicates));
		values[3] = Int64GetDatum(groupmap_bytes(map));
		groupmap_detach(map);
		LWLockRelease(registry->lock);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}

/*
 * streamproc._dedup_run_entries(data bytea) RETURNS TABLE (key bytea,
 *     claim bytea, xid bigint, ts timestamptz)
 *		The claims of a run of streamproc.dedup_runs; xid is the inserting
 *		transaction of a claim by a log row (restores rebase them), else
 *		NULL.
 */
Datum
streamproc_dedup_run_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	bytea *data = PG_GETARG_BYTEA_PP(0);
	uint32 len = VARSIZE_ANY_EXHDR(data);
	uint32 pos = 0;
	RunEntry entry;

	InitMaterializedSRF(fcinfo, 0);
	while (claims_run_next(VARDATA_ANY(data), len, &pos, &entry))
	{
		Datum values[4];
		bool nulls[4] = {false, false, false, false};
		bytea *key = palloc(VARHDRSZ + entry.keylen);
		bytea *id = palloc(VARHDRSZ + DEDUP_ID_LEN);

		SET_VARSIZE(key, VARHDRSZ + entry.keylen);
		memcpy(VARDATA(key), entry.key, entry.keylen);
		SET_VARSIZE(id, VARHDRSZ + DEDUP_ID_LEN);
		memcpy(VARDATA(id), entry.id, DEDUP_ID_LEN);
		values[0] = PointerGetDatum(key);
		values[1] = PointerGetDatum(id);
		if (entry.id[0] == 'l')
		{
			uint64 x;

			memcpy(&x, entry.id + 3, sizeof(uint64));
			values[2] = Int64GetDatum((int64)x);
		}
		else
			nulls[2] = true;
		values[3] = TimestampTzGetDatum(entry.time);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(key);
		pfree(id);
	}
	return (Datum)0;
}

/*
 * streamproc_dedup_call_sql
 *		The call of streamproc._dedup() for a row of a stream's log (with
 *		the columns "$tableoid" and "$ctid" added) under alias, for the
 *		log queries of a stream with these options (view.c, catalog.c).
 */
char *
streamproc_dedup_call_sql(const StreamOptions *opts, const char *alias)
{
	StringInfoData sql;
	const char *a = quote_identifier(alias);
	ListCell *lc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "streamproc._dedup(%s.\"$tableoid\", %s.\"$ctid\", %s.\"$xid\", ", a, a, a);
	if (opts->event_time)
		appendStringInfo(&sql, "%s.%s", a, quote_identifier(opts->event_time));
	else
		appendStringInfoString(&sql, "NULL::pg_catalog.timestamptz");
	foreach (lc, opts->dedup_columns)
		appendStringInfo(&sql, ", %s.%s", a, quote_identifier(lfirst(lc)));
	appendStringInfoChar(&sql, ')');
	return sql.data;
}
