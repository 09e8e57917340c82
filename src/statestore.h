/*-------------------------------------------------------------------------
 *
 * statestore.h
 *	  Checkpointed state of continuous views: runs of groups per bucket
 *	  (see statestore.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_STATESTORE_H
#define STREAMPROC_STATESTORE_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "groupmap.h"

/* Buckets of a slot's checkpoint: the partitions of its group map. */
#define STATESTORE_BUCKETS GROUPMAP_PARTITIONS

/* ---- The run format (pure C; the fuzzers build it) ---- */

/* Append one group (state NULL: a tombstone, the group left the slot). */
extern void run_append(StringInfo run, const char *key, uint32 keylen,
					   const char *state, uint32 statelen);

/* Bytes run_append() adds for a group (statelen < 0: a tombstone). */
extern size_t run_entry_size(uint32 keylen, int64 statelen);

/*
 * Read the group at *pos of a run [data, data + len); statelen is -1 for a
 * tombstone.  Returns false at the end, and sets *corrupt when the bytes
 * are not a run.
 */
extern bool run_next(const char *data, size_t len, size_t *pos,
					 const char **key, uint32 *keylen, const char **state,
					 int64 *statelen, bool *corrupt);

#ifndef STREAMPROC_FRONTEND

/* A worker's bookkeeping of one slot of one view's checkpoint. */
typedef struct StoreBucket
{
	int64 stored; /* bytes of its runs in the table */
	int64 live;   /* bytes its groups would take as one run */
	int32 runs;
	int32 pad;
} StoreBucket;

typedef struct SlotStore
{
	Oid view;
	int slot;
	int64 next_run;
	int64 written;                            /* bytes of compaction the next checkpoint owes */
	StringInfoData delta[STATESTORE_BUCKETS]; /* the checkpoint being built */
	int32 delta_entries[STATESTORE_BUCKETS];
	StoreBucket buckets[STATESTORE_BUCKETS];
} SlotStore;

extern SlotStore *statestore_create(Oid view, int slot, MemoryContext cxt);

/*
 * Load a slot: call cb for every group the slot's checkpoint holds, in
 * run order per bucket (a later call for a key replaces an earlier one; a
 * tombstone, statelen -1, removes it).  Needs a transaction and SPI.
 */
typedef void (*StoreEntryCallback)(const char *key, uint32 keylen,
								   const char *state, int64 statelen,
								   void *arg);
extern void statestore_load(SlotStore *ss, StoreEntryCallback cb, void *arg);

/* Account a group's state of the slot changing size (0: none). */
static inline void
statestore_note(SlotStore *ss, uint32 hash, uint32 keylen, int64 oldlen,
				int64 newlen)
{
	StoreBucket *b = &ss->buckets[GROUPMAP_PARTITION(hash)];

	if (oldlen >= 0)
		b->live -= run_entry_size(keylen, oldlen);
	if (newlen >= 0)
		b->live += run_entry_size(keylen, newlen);
}

/*
 * A checkpoint: put the changed groups (state NULL: left the slot), then
 * write.  statestore_write() inserts one run per bucket with changes, and
 * compacts buckets whose runs hold too much garbage, rewriting them from
 * the map, within a budget proportional to what was written.  Needs a
 * transaction and SPI; statestore_written() after the commit.
 */
extern void statestore_put(SlotStore *ss, uint32 hash, const char *key,
						   uint32 keylen, const char *state, uint32 statelen);
extern bool statestore_pending(SlotStore *ss);
extern void statestore_write(SlotStore *ss, GroupMap *map);
extern void statestore_discard(SlotStore *ss);

/* The bytes of the slot's checkpoint, and the live bytes they hold. */
extern void statestore_sizes(SlotStore *ss, int64 *stored, int64 *live);

/*
 * Readers without shared memory: call cb with the latest state of every
 * group of every slot (bucket < 0) or of one bucket, from the table.
 */
typedef void (*StoreReadCallback)(int slot, const char *key, uint32 keylen,
								  const char *state, uint32 statelen,
								  void *arg);
/*
 * The state tables are the extension's: a reader that may read a view
 * reads them as the bootstrap superuser, around the query only (what
 * combines the states runs as the reader).
 */
typedef struct InternalRead
{
	Oid save_userid;
	int save_sec;
} InternalRead;

extern void streamproc_internal_read_begin(InternalRead *ir);
extern void streamproc_internal_read_end(InternalRead *ir);

extern void statestore_read_slots(Oid view, int bucket, int min_slot,
								  StoreReadCallback cb, void *arg);
extern void statestore_read(Oid view, int bucket, StoreReadCallback cb,
							void *arg);

#endif /* STREAMPROC_FRONTEND */

#endif /* STREAMPROC_STATESTORE_H */
