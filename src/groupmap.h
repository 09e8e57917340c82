/*-------------------------------------------------------------------------
 *
 * groupmap.h
 *	  One continuous view's groups in shared memory (see groupmap.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_GROUPMAP_H
#define STREAMPROC_GROUPMAP_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "port/atomics.h"
#include "utils/dsa.h"

/* Partitions of a group map; a group's is the top byte of its hash. */
#define GROUPMAP_PARTITIONS      256
#define GROUPMAP_PARTITION(hash) ((int)((hash) >> 24))

/* Most state slots a group can have (slot numbers 0 .. 63). */
#define GROUPMAP_MAX_SLOTS 64

typedef struct GroupMap GroupMap; /* a backend's attachment */

extern uint32 groupmap_hash(const char *key, size_t keylen);

extern dsa_pointer groupmap_create(dsa_area *area, int tranche,
								   pg_atomic_uint64 *total);
extern GroupMap *groupmap_attach(dsa_area *area, dsa_pointer control,
								 pg_atomic_uint64 *total);
extern void groupmap_detach(GroupMap *map);
extern void groupmap_destroy(GroupMap *map);

extern int64 groupmap_groups(GroupMap *map);
extern int64 groupmap_bytes(GroupMap *map);

/* A group copied out of the map: its key and each slot's packed state. */
typedef struct GroupSlotState
{
	int slot;
	bool dirty;
	const char *data;
	uint32 len;
} GroupSlotState;

typedef struct GroupCopy
{
	uint32 hash;
	const char *key;
	uint32 keylen;
	int nstates;
	GroupSlotState states[GROUPMAP_MAX_SLOTS];
} GroupCopy;

/*
 * Readers.  groupmap_lookup() copies one group's bytes into buf (reset
 * first) and returns whether it exists; groupmap_copy_partition() appends
 * every group of a partition to buf and returns how many.  Either way
 * groupmap_parse() then reads a copy (at *pos, which it advances) without
 * any lock held.
 */
extern bool groupmap_lookup(GroupMap *map, uint32 hash, const char *key,
							uint32 keylen, StringInfo buf);
extern int groupmap_copy_partition(GroupMap *map, int partition,
								   StringInfo buf);
extern void groupmap_parse(const StringInfo buf, int *pos, GroupCopy *group);

/* The writer of a slot: its state of one group (copied), or false. */
extern bool groupmap_get_slot(GroupMap *map, uint32 hash, const char *key,
							  uint32 keylen, int slot, StringInfo buf);
/* The same with the group's partition locked by the caller (any mode). */
extern bool groupmap_get_slot_locked(GroupMap *map, uint32 hash,
									 const char *key, uint32 keylen, int slot,
									 StringInfo buf, bool *dirty);

/*
 * The writer of a slot changes its states with a partition locked
 * exclusively: groupmap_put() replaces the slot's state of a group
 * (creating the group) and marks it dirty, groupmap_put_new() adds a group
 * the caller knows is absent; groupmap_remove() removes it
 * (deleting the group when no slot has state left).  Both return the
 * change in the map's bytes; *was_dirty says whether the slot's state was
 * already dirty (put) or existed (remove), *created whether a group was
 * created (put) or deleted (remove).
 */
extern void groupmap_lock_partition(GroupMap *map, int partition);
extern void groupmap_unlock_partition(GroupMap *map, int partition);
extern int64 groupmap_put(GroupMap *map, uint32 hash, const char *key,
						  uint32 keylen, int slot, const char *state,
						  uint32 statelen, bool *was_dirty, bool *created);
extern int64 groupmap_put_new(GroupMap *map, uint32 hash, const char *key,
							  uint32 keylen, int slot, const char *state,
							  uint32 statelen);
extern int64 groupmap_remove(GroupMap *map, uint32 hash, const char *key,
							 uint32 keylen, int slot, bool *existed,
							 bool *deleted);

/*
 * Checkpoint support, with the partition locked exclusively: copy the
 * slot's state of one group into buf and clear its dirty bit (false: the
 * slot has no state); and visit every group with a state of the slot.
 */
extern bool groupmap_take_dirty(GroupMap *map, uint32 hash, const char *key,
								uint32 keylen, int slot, StringInfo buf);
typedef void (*GroupMapSlotCallback)(uint32 hash, const char *key,
									 uint32 keylen, const char *state,
									 uint32 statelen, void *arg);
extern void groupmap_visit_slot(GroupMap *map, int partition, int slot,
								GroupMapSlotCallback cb, void *arg);

extern void groupmap_clear_dirty(GroupMap *map, int partition, int slot);

/* Remove every state of a slot (slot < 0: of all slots). */
extern void groupmap_reset_slot(GroupMap *map, int slot);

#endif /* STREAMPROC_GROUPMAP_H */
