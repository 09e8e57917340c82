/*-------------------------------------------------------------------------
 *
 * groupmap.c
 *	  One continuous view's groups in shared memory: a hash table in a DSA
 *	  area, from group key to the packed state of each state slot.
 *
 * Layout.  The control object holds GROUPMAP_PARTITIONS partitions; a
 * group lives in the partition of the top byte of its key's hash, in the
 * bucket of the hash's low bits.  Each partition has its own LWLock, its
 * own bucket array (allocated at its first group) and doubles it on its
 * own, under its own lock, when it holds more groups than buckets: a
 * resize never stops the other partitions.  The partition of a group is
 * also its bucket in the checkpoint (statestore.c).
 *
 * A group is one DSA allocation:
 *
 *		dsa_pointer next      bucket chain
 *		uint32      hash
 *		uint32      keylen
 *		uint32      dirlen    bytes of the slot directory
 *		directory             per slot with a state, in slot order: a byte
 *		                      (slot number, | 0x80 when dirty) and the
 *		                      state's length as a varint
 *		key bytes
 *		state bytes           in directory order
 *
 * so a group of count and sum over an int key takes 48 bytes.  A state
 * that keeps its length is overwritten in place; otherwise the group is
 * reallocated, with the partition lock held.  The dirty bit of a slot is
 * set by every change of its state and cleared by the checkpoint that
 * writes it; it lets the worker list each changed group once.
 *
 * Bytes are counted as the allocator hands them out (its size classes),
 * bucket arrays included, in the map and in a total shared by all maps
 * (the memory budget), with atomics.
 *
 * Locking.  Only a slot's owner (one ingest worker) changes that slot's
 * states, with the partition's lock held exclusively; readers copy groups
 * out with it held shared and look at the copies without any lock.  Two
 * writers of different slots only meet on a partition lock.  Whoever
 * destroys the map must know that nobody else is attached (state.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"

#include "groupmap.h"
#include "varint.h"

typedef struct GroupMapPartition
{
	LWLock lock;
	dsa_pointer buckets; /* dsa_pointer[nbuckets], or invalid */
	uint32 nbuckets;     /* a power of 2, or 0 */
	uint32 count;        /* groups */
} GroupMapPartition;

#define GROUPMAP_MAGIC 0x67726d70 /* "grmp" */

typedef struct GroupMapControl
{
	uint32 magic;            /* GROUPMAP_MAGIC while the map exists */
	pg_atomic_uint64 bytes;  /* bytes allocated, control object included */
	pg_atomic_uint64 groups; /* groups in all partitions */
	GroupMapPartition parts[GROUPMAP_PARTITIONS];
} GroupMapControl;

/* The header of a group's allocation; the rest follows it unaligned. */
typedef struct GroupEntry
{
	dsa_pointer next;
	uint32 hash;
	uint32 keylen;
	uint32 dirlen;
} GroupEntry;

#define ENTRY_DIR(e)  ((char *)(e) + sizeof(GroupEntry))
#define ENTRY_KEY(e)  (ENTRY_DIR(e) + (e)->dirlen)
#define DIRTY_BIT     0x80
#define SLOT_MASK     0x7F
#define FIRST_BUCKETS 4

struct GroupMap
{
	dsa_area *area;
	dsa_pointer control_dp;
	GroupMapControl *control;
	pg_atomic_uint64 *total; /* shared total of all maps */
};

/* One slot's entry in a parsed directory. */
typedef struct DirSlot
{
	int slot;
	bool dirty;
	uint32 len;
	uint32 offset; /* of its state, from the start of the states */
} DirSlot;

/*
 * Bytes the DSA allocator hands out for a request: its size classes (as
 * in dsa.c) up to 8 kB, whole 4 kB pages above.
 */
static Size
alloc_size(Size request)
{
	static const uint16 classes[] = {
		8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
		320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1560, 1816, 2048,
		2616, 3120, 3640, 4096, 5456, 6552, 7280, 8192};
	int lo = 0;
	int hi = lengthof(classes) - 1;

	if (request > 8192)
		return TYPEALIGN(4096, request);
	while (lo < hi)
	{
		int mid = (lo + hi) / 2;

		if (classes[mid] < request)
			lo = mid + 1;
		else
			hi = mid;
	}
	return classes[lo];
}

static void
count_bytes(GroupMap *map, int64 delta)
{
	if (delta > 0)
	{
		pg_atomic_add_fetch_u64(&map->control->bytes, delta);
		pg_atomic_add_fetch_u64(map->total, delta);
	}
	else if (delta < 0)
	{
		pg_atomic_sub_fetch_u64(&map->control->bytes, -delta);
		pg_atomic_sub_fetch_u64(map->total, -delta);
	}
}

uint32
groupmap_hash(const char *key, size_t keylen)
{
	return hash_bytes((const unsigned char *)key, (int)keylen);
}

/*
 * groupmap_create
 *		A new, empty map in area; its LWLocks belong to tranche.  Returns the
 *		handle that groupmap_attach() takes.
 */
dsa_pointer
groupmap_create(dsa_area *area, int tranche, pg_atomic_uint64 *total)
{
	dsa_pointer dp = dsa_allocate0(area, sizeof(GroupMapControl));
	GroupMapControl *control = dsa_get_address(area, dp);
	Size size = alloc_size(sizeof(GroupMapControl));
	int i;

	control->magic = GROUPMAP_MAGIC;
	pg_atomic_init_u64(&control->bytes, size);
	pg_atomic_init_u64(&control->groups, 0);
	for (i = 0; i < GROUPMAP_PARTITIONS; i++)
	{
		LWLockInitialize(&control->parts[i].lock, tranche);
		control->parts[i].buckets = InvalidDsaPointer;
	}
	pg_atomic_add_fetch_u64(total, size);
	return dp;
}

GroupMap *
groupmap_attach(dsa_area *area, dsa_pointer control, pg_atomic_uint64 *total)
{
	GroupMap *map = palloc(sizeof(GroupMap));

	map->area = area;
	map->control_dp = control;
	map->control = dsa_get_address(area, control);
	map->total = total;
	if (map->control->magic != GROUPMAP_MAGIC)
		elog(PANIC, "continuous view state: group map " UINT64_FORMAT " is not valid",
			 (uint64)control);
	return map;
}

void
groupmap_detach(GroupMap *map)
{
	pfree(map);
}

/*
 * groupmap_destroy
 *		Free the map and every group in it.  The caller guarantees that no
 *		other backend uses it any more.
 */
void
groupmap_destroy(GroupMap *map)
{
	int p;

	groupmap_reset_slot(map, -1);
	for (p = 0; p < GROUPMAP_PARTITIONS; p++)
	{
		GroupMapPartition *part = &map->control->parts[p];

		if (DsaPointerIsValid(part->buckets))
		{
			count_bytes(map, -(int64)alloc_size(sizeof(dsa_pointer) * part->nbuckets));
			dsa_free(map->area, part->buckets);
		}
	}
	count_bytes(map, -(int64)alloc_size(sizeof(GroupMapControl)));
	map->control->magic = 0;
	dsa_free(map->area, map->control_dp);
	pfree(map);
}

int64
groupmap_groups(GroupMap *map)
{
	return (int64)pg_atomic_read_u64(&map->control->groups);
}

int64
groupmap_bytes(GroupMap *map)
{
	return (int64)pg_atomic_read_u64(&map->control->bytes);
}

/* Parse a group's directory; returns the number of slots. */
static int
parse_dir(const char *dir, uint32 dirlen, DirSlot *slots)
{
	const char *p = dir;
	const char *end = dir + dirlen;
	uint32 offset = 0;
	int n = 0;

	while (p < end)
	{
		uint64_t len;
		unsigned char b = (unsigned char)*p++;

		if (n >= GROUPMAP_MAX_SLOTS || !varint_get(&p, end, &len) || len > MaxAllocSize)
			elog(ERROR, "corrupt group in continuous view state");
		slots[n].slot = b & SLOT_MASK;
		slots[n].dirty = (b & DIRTY_BIT) != 0;
		slots[n].len = (uint32)len;
		slots[n].offset = offset;
		offset += (uint32)len;
		n++;
	}
	return n;
}

static Size
entry_size(GroupEntry *e, const DirSlot *slots, int nslots)
{
	Size size = sizeof(GroupEntry) + e->dirlen + e->keylen;
	int i;

	for (i = 0; i < nslots; i++)
		size += slots[i].len;
	return size;
}

static dsa_pointer *
bucket_array(GroupMap *map, GroupMapPartition *part)
{
	return dsa_get_address(map->area, part->buckets);
}

/* The bucket of a hash in a partition (which has buckets). */
static dsa_pointer *
bucket_of(GroupMap *map, GroupMapPartition *part, uint32 hash)
{
	return &bucket_array(map, part)[hash & (part->nbuckets - 1)];
}

/*
 * Find a group in its partition (locked by the caller); *link is set to
 * the pointer that points at it (for unlinking).
 */
static GroupEntry *
find_entry(GroupMap *map, GroupMapPartition *part, uint32 hash, const char *key,
		   uint32 keylen, dsa_pointer **link)
{
	dsa_pointer *prev;
	dsa_pointer dp;

	if (part->nbuckets == 0)
		return NULL;
	prev = bucket_of(map, part, hash);
	for (dp = *prev; DsaPointerIsValid(dp);)
	{
		GroupEntry *e = dsa_get_address(map->area, dp);

		if (e->hash == hash && e->keylen == keylen &&
			memcmp(ENTRY_KEY(e), key, keylen) == 0)
		{
			if (link)
				*link = prev;
			return e;
		}
		prev = &e->next;
		dp = e->next;
	}
	return NULL;
}

/* Double a partition's buckets (or create them), with its lock held. */
static void
grow_partition(GroupMap *map, GroupMapPartition *part)
{
	uint32 newn = part->nbuckets == 0 ? FIRST_BUCKETS : part->nbuckets * 2;
	dsa_pointer newdp = dsa_allocate(map->area, sizeof(dsa_pointer) * newn);
	dsa_pointer *newb = dsa_get_address(map->area, newdp);
	uint32 i;

	for (i = 0; i < newn; i++)
		newb[i] = InvalidDsaPointer;
	if (part->nbuckets > 0)
	{
		dsa_pointer *old = bucket_array(map, part);

		for (i = 0; i < part->nbuckets; i++)
		{
			dsa_pointer dp = old[i];

			while (DsaPointerIsValid(dp))
			{
				GroupEntry *e = dsa_get_address(map->area, dp);
				dsa_pointer next = e->next;
				dsa_pointer *b = &newb[e->hash & (newn - 1)];

				e->next = *b;
				*b = dp;
				dp = next;
			}
		}
		count_bytes(map, -(int64)alloc_size(sizeof(dsa_pointer) * part->nbuckets));
		dsa_free(map->area, part->buckets);
	}
	count_bytes(map, (int64)alloc_size(sizeof(dsa_pointer) * newn));
	part->buckets = newdp;
	part->nbuckets = newn;
}

bool
groupmap_lookup(GroupMap *map, uint32 hash, const char *key, uint32 keylen,
				StringInfo buf)
{
	GroupMapPartition *part = &map->control->parts[GROUPMAP_PARTITION(hash)];
	GroupEntry *e;
	bool found = false;

	resetStringInfo(buf);
	LWLockAcquire(&part->lock, LW_SHARED);
	e = find_entry(map, part, hash, key, keylen, NULL);
	if (e != NULL)
	{
		DirSlot slots[GROUPMAP_MAX_SLOTS];
		int n = parse_dir(ENTRY_DIR(e), e->dirlen, slots);
		Size size = entry_size(e, slots, n);

		appendBinaryStringInfo(buf, (char *)&size, sizeof(Size));
		appendBinaryStringInfo(buf, (char *)e, size);
		found = true;
	}
	LWLockRelease(&part->lock);
	return found;
}

/* Buckets ahead whose first entry a full copy prefetches. */
#define COPY_PREFETCH_DISTANCE 16

static inline void
prefetch_entry(const void *p)
{
#if defined(__GNUC__) || defined(__clang__)
	__builtin_prefetch(p, 0, 3);
	__builtin_prefetch((const char *)p + 64, 0, 3);
#endif
}

int
groupmap_copy_partition(GroupMap *map, int partition, StringInfo buf)
{
	GroupMapPartition *part = &map->control->parts[partition];
	int count = 0;
	uint32 i;

	LWLockAcquire(&part->lock, LW_SHARED);
	for (i = 0; i < part->nbuckets; i++)
	{
		dsa_pointer *buckets = bucket_array(map, part);
		dsa_pointer dp = buckets[i];

		/*
		 * The entries are scattered over the area: without a prefetch, the
		 * scan waits for memory at every group.  Ask for the first entry of
		 * a bucket a few buckets ahead (most chains hold one entry).
		 */
		if (i + COPY_PREFETCH_DISTANCE < part->nbuckets &&
			DsaPointerIsValid(buckets[i + COPY_PREFETCH_DISTANCE]))
			prefetch_entry(dsa_get_address(map->area, buckets[i + COPY_PREFETCH_DISTANCE]));

		while (DsaPointerIsValid(dp))
		{
			GroupEntry *e = dsa_get_address(map->area, dp);
			DirSlot slots[GROUPMAP_MAX_SLOTS];
			int n = parse_dir(ENTRY_DIR(e), e->dirlen, slots);
			Size size = entry_size(e, slots, n);

			appendBinaryStringInfo(buf, (char *)&size, sizeof(Size));
			appendBinaryStringInfo(buf, (char *)e, size);
			count++;
			dp = e->next;
		}
	}
	LWLockRelease(&part->lock);
	return count;
}

void
groupmap_parse(const StringInfo buf, int *pos, GroupCopy *group)
{
	Size size;
	GroupEntry e;
	const char *base;
	const char *states;
	DirSlot slots[GROUPMAP_MAX_SLOTS];
	int n;
	int i;

	memcpy(&size, buf->data + *pos, sizeof(Size));
	base = buf->data + *pos + sizeof(Size);
	memcpy(&e, base, sizeof(GroupEntry));
	n = parse_dir(base + sizeof(GroupEntry), e.dirlen, slots);
	group->hash = e.hash;
	group->key = base + sizeof(GroupEntry) + e.dirlen;
	group->keylen = e.keylen;
	group->nstates = n;
	states = group->key + e.keylen;
	for (i = 0; i < n; i++)
	{
		group->states[i].slot = slots[i].slot;
		group->states[i].dirty = slots[i].dirty;
		group->states[i].data = states + slots[i].offset;
		group->states[i].len = slots[i].len;
	}
	*pos += (int)(sizeof(Size) + size);
}

bool
groupmap_get_slot_locked(GroupMap *map, uint32 hash, const char *key,
						 uint32 keylen, int slot, StringInfo buf, bool *dirty)
{
	GroupMapPartition *part = &map->control->parts[GROUPMAP_PARTITION(hash)];
	GroupEntry *e;

	Assert(LWLockHeldByMe(&part->lock));
	e = find_entry(map, part, hash, key, keylen, NULL);
	if (e != NULL)
	{
		DirSlot slots[GROUPMAP_MAX_SLOTS];
		int n = parse_dir(ENTRY_DIR(e), e->dirlen, slots);
		int i;

		for (i = 0; i < n; i++)
		{
			if (slots[i].slot == slot)
			{
				appendBinaryStringInfo(buf, ENTRY_KEY(e) + e->keylen + slots[i].offset,
									   slots[i].len);
				if (dirty)
					*dirty = slots[i].dirty;
				return true;
			}
		}
	}
	return false;
}

bool
groupmap_get_slot(GroupMap *map, uint32 hash, const char *key, uint32 keylen,
				  int slot, StringInfo buf)
{
	GroupMapPartition *part = &map->control->parts[GROUPMAP_PARTITION(hash)];
	bool found;

	LWLockAcquire(&part->lock, LW_SHARED);
	found = groupmap_get_slot_locked(map, hash, key, keylen, slot, buf, NULL);
	LWLockRelease(&part->lock);
	return found;
}

void
groupmap_lock_partition(GroupMap *map, int partition)
{
	Assert(map->control->magic == GROUPMAP_MAGIC);
	LWLockAcquire(&map->control->parts[partition].lock, LW_EXCLUSIVE);
}

void
groupmap_unlock_partition(GroupMap *map, int partition)
{
	LWLockRelease(&map->control->parts[partition].lock);
}

/*
 * Build a new allocation for a group from its old one (NULL: a new group)
 * with the slot's state replaced by (state, statelen) or, when state is
 * NULL, removed; the slot's dirty bit is set to dirty.  Returns
 * InvalidDsaPointer when no slot would be left.
 */
static dsa_pointer
rebuild_entry(GroupMap *map, GroupEntry *old, uint32 hash, const char *key,
			  uint32 keylen, int slot, const char *state, uint32 statelen,
			  bool dirty, Size *size)
{
	DirSlot slots[GROUPMAP_MAX_SLOTS + 1];
	const char *oldstates = NULL;
	char dir[(GROUPMAP_MAX_SLOTS + 1) * (1 + VARINT_MAX_BYTES)];
	int dirlen = 0;
	int n = 0;
	int i;
	bool placed = false;
	Size total;
	dsa_pointer dp;
	GroupEntry *e;
	char *p;

	if (old != NULL)
	{
		n = parse_dir(ENTRY_DIR(old), old->dirlen, slots);
		oldstates = ENTRY_KEY(old) + old->keylen;
	}

	/* the new directory */
	total = 0;
	for (i = 0; i <= n; i++)
	{
		bool here = !placed && (i == n || slots[i].slot >= slot);

		if (here)
		{
			placed = true;
			if (state != NULL)
			{
				dir[dirlen++] = (char)(slot | (dirty ? DIRTY_BIT : 0));
				dirlen += varint_put(dir + dirlen, statelen);
				total += statelen;
			}
			if (i < n && slots[i].slot == slot)
				continue; /* replaced */
		}
		if (i == n)
			break;
		dir[dirlen++] = (char)(slots[i].slot | (slots[i].dirty ? DIRTY_BIT : 0));
		dirlen += varint_put(dir + dirlen, slots[i].len);
		total += slots[i].len;
	}
	if (dirlen == 0)
		return InvalidDsaPointer;

	total += sizeof(GroupEntry) + dirlen + keylen;
	dp = dsa_allocate(map->area, total);
	e = dsa_get_address(map->area, dp);
	e->next = InvalidDsaPointer;
	e->hash = hash;
	e->keylen = keylen;
	e->dirlen = dirlen;
	p = ENTRY_DIR(e);
	memcpy(p, dir, dirlen);
	p += dirlen;
	memcpy(p, key, keylen);
	p += keylen;

	/* the states, in directory order */
	placed = false;
	for (i = 0; i <= n; i++)
	{
		bool here = !placed && (i == n || slots[i].slot >= slot);

		if (here)
		{
			placed = true;
			if (state != NULL)
			{
				memcpy(p, state, statelen);
				p += statelen;
			}
			if (i < n && slots[i].slot == slot)
				continue;
		}
		if (i == n)
			break;
		memcpy(p, oldstates + slots[i].offset, slots[i].len);
		p += slots[i].len;
	}
	Assert((Size)(p - (char *)e) == total);
	*size = total;
	return dp;
}

/* Add a new group with one slot's state; the partition is locked exclusively. */
static int64
add_group(GroupMap *map, GroupMapPartition *part, uint32 hash, const char *key,
		  uint32 keylen, int slot, const char *state, uint32 statelen)
{
	dsa_pointer newdp;
	Size newsize;
	int64 delta;

	if (part->count >= part->nbuckets)
		grow_partition(map, part);
	newdp = rebuild_entry(map, NULL, hash, key, keylen, slot, state, statelen,
						  true, &newsize);
	{
		dsa_pointer *b = bucket_of(map, part, hash);

		((GroupEntry *)dsa_get_address(map->area, newdp))->next = *b;
		*b = newdp;
	}
	part->count++;
	pg_atomic_add_fetch_u64(&map->control->groups, 1);
	delta = (int64)alloc_size(newsize);
	count_bytes(map, delta);
	return delta;
}

int64
groupmap_put(GroupMap *map, uint32 hash, const char *key, uint32 keylen,
			 int slot, const char *state, uint32 statelen, bool *was_dirty,
			 bool *created)
{
	GroupMapPartition *part = &map->control->parts[GROUPMAP_PARTITION(hash)];
	dsa_pointer *link = NULL;
	GroupEntry *e;
	dsa_pointer newdp;
	Size newsize;
	int64 delta = 0;

	Assert(LWLockHeldByMeInMode(&part->lock, LW_EXCLUSIVE));
	*was_dirty = false;
	*created = false;
	e = find_entry(map, part, hash, key, keylen, &link);
	if (e != NULL)
	{
		DirSlot slots[GROUPMAP_MAX_SLOTS];
		int n = parse_dir(ENTRY_DIR(e), e->dirlen, slots);
		int i;

		for (i = 0; i < n; i++)
		{
			if (slots[i].slot != slot)
				continue;
			*was_dirty = slots[i].dirty;
			if (slots[i].len == statelen)
			{
				/* same length: in place */
				memcpy(ENTRY_KEY(e) + e->keylen + slots[i].offset, state, statelen);
				if (!slots[i].dirty)
				{
					char *dir = ENTRY_DIR(e);
					const char *q = dir;
					int j;

					/* find slot i's byte in the directory and mark it */
					for (j = 0; j < i; j++)
					{
						uint64_t skip = 0;

						q++;
						(void)varint_get(&q, dir + e->dirlen, &skip);
					}
					*(char *)q |= DIRTY_BIT;
				}
				return 0;
			}
			break;
		}

		/* reallocate in the same place of the chain */
		newdp = rebuild_entry(map, e, hash, key, keylen, slot, state, statelen,
							  true, &newsize);
		delta = (int64)alloc_size(newsize) -
				(int64)alloc_size(entry_size(e, slots, n));
		((GroupEntry *)dsa_get_address(map->area, newdp))->next = e->next;
		{
			dsa_pointer olddp = *link;

			*link = newdp;
			dsa_free(map->area, olddp);
		}
		count_bytes(map, delta);
		return delta;
	}

	*created = true;
	return add_group(map, part, hash, key, keylen, slot, state, statelen);
}

/*
 * groupmap_put_new
 *		groupmap_put() of a group the caller knows is absent (it looked
 *		for it under the same exclusive partition lock): no second search.
 */
int64
groupmap_put_new(GroupMap *map, uint32 hash, const char *key, uint32 keylen,
				 int slot, const char *state, uint32 statelen)
{
	GroupMapPartition *part = &map->control->parts[GROUPMAP_PARTITION(hash)];
#ifdef USE_ASSERT_CHECKING
	dsa_pointer *link = NULL;

	Assert(LWLockHeldByMeInMode(&part->lock, LW_EXCLUSIVE));
	Assert(find_entry(map, part, hash, key, keylen, &link) == NULL);
#endif
	return add_group(map, part, hash, key, keylen, slot, state, statelen);
}

int64
groupmap_remove(GroupMap *map, uint32 hash, const char *key, uint32 keylen,
				int slot, bool *existed, bool *deleted)
{
	GroupMapPartition *part = &map->control->parts[GROUPMAP_PARTITION(hash)];
	dsa_pointer *link = NULL;
	GroupEntry *e;
	DirSlot slots[GROUPMAP_MAX_SLOTS];
	dsa_pointer olddp;
	dsa_pointer newdp;
	Size newsize;
	int64 delta;
	int n;
	int i;

	Assert(LWLockHeldByMeInMode(&part->lock, LW_EXCLUSIVE));
	*existed = false;
	*deleted = false;
	e = find_entry(map, part, hash, key, keylen, &link);
	if (e == NULL)
		return 0;
	n = parse_dir(ENTRY_DIR(e), e->dirlen, slots);
	for (i = 0; i < n; i++)
		if (slots[i].slot == slot)
			*existed = true;
	if (!*existed)
		return 0;

	olddp = *link;
	delta = -(int64)alloc_size(entry_size(e, slots, n));
	newdp = rebuild_entry(map, e, hash, key, keylen, slot, NULL, 0, false, &newsize);
	if (DsaPointerIsValid(newdp))
	{
		((GroupEntry *)dsa_get_address(map->area, newdp))->next = e->next;
		*link = newdp;
		delta += (int64)alloc_size(newsize);
	}
	else
	{
		*link = e->next;
		part->count--;
		pg_atomic_sub_fetch_u64(&map->control->groups, 1);
		*deleted = true;
	}
	dsa_free(map->area, olddp);
	count_bytes(map, delta);
	return delta;
}

bool
groupmap_take_dirty(GroupMap *map, uint32 hash, const char *key, uint32 keylen,
					int slot, StringInfo buf)
{
	GroupMapPartition *part = &map->control->parts[GROUPMAP_PARTITION(hash)];
	GroupEntry *e;
	char *dir;
	const char *q;
	const char *end;
	uint32 offset = 0;

	Assert(LWLockHeldByMeInMode(&part->lock, LW_EXCLUSIVE));
	e = find_entry(map, part, hash, key, keylen, NULL);
	if (e == NULL)
		return false;
	dir = ENTRY_DIR(e);
	q = dir;
	end = dir + e->dirlen;
	while (q < end)
	{
		char *b = (char *)q++;
		uint64_t len = 0;

		(void)varint_get(&q, end, &len);
		if ((*b & SLOT_MASK) == slot)
		{
			*b &= ~DIRTY_BIT;
			appendBinaryStringInfo(buf, ENTRY_KEY(e) + e->keylen + offset, (int)len);
			return true;
		}
		offset += (uint32)len;
	}
	return false;
}

void
groupmap_visit_slot(GroupMap *map, int partition, int slot,
					GroupMapSlotCallback cb, void *arg)
{
	GroupMapPartition *part = &map->control->parts[partition];
	uint32 i;

	for (i = 0; i < part->nbuckets; i++)
	{
		dsa_pointer dp = bucket_array(map, part)[i];

		while (DsaPointerIsValid(dp))
		{
			GroupEntry *e = dsa_get_address(map->area, dp);
			DirSlot slots[GROUPMAP_MAX_SLOTS];
			int n = parse_dir(ENTRY_DIR(e), e->dirlen, slots);
			int j;

			for (j = 0; j < n; j++)
				if (slots[j].slot == slot)
					cb(e->hash, ENTRY_KEY(e), e->keylen,
					   ENTRY_KEY(e) + e->keylen + slots[j].offset, slots[j].len, arg);
			dp = e->next;
		}
	}
}

/* Clear the dirty bits of a slot in a partition (locked exclusively). */
void
groupmap_clear_dirty(GroupMap *map, int partition, int slot)
{
	GroupMapPartition *part = &map->control->parts[partition];
	uint32 i;

	for (i = 0; i < part->nbuckets; i++)
	{
		dsa_pointer dp = bucket_array(map, part)[i];

		while (DsaPointerIsValid(dp))
		{
			GroupEntry *e = dsa_get_address(map->area, dp);
			char *q = ENTRY_DIR(e);
			char *end = q + e->dirlen;

			while (q < end)
			{
				char *b = q++;
				uint64_t len = 0;

				(void)varint_get((const char **)&q, end, &len);
				if ((*b & SLOT_MASK) == slot)
					*b &= ~DIRTY_BIT;
			}
			dp = e->next;
		}
	}
}

/*
 * groupmap_reset_slot
 *		Remove a slot's states from every group (slot < 0: all of them),
 *		deleting the groups left without state.  Used when a worker
 *		reloads its slot from the checkpoint, and to destroy a map.
 */
void
groupmap_reset_slot(GroupMap *map, int slot)
{
	int p;

	for (p = 0; p < GROUPMAP_PARTITIONS; p++)
	{
		GroupMapPartition *part = &map->control->parts[p];
		uint32 i;

		LWLockAcquire(&part->lock, LW_EXCLUSIVE);
		for (i = 0; i < part->nbuckets; i++)
		{
			dsa_pointer *link = &bucket_array(map, part)[i];

			while (DsaPointerIsValid(*link))
			{
				dsa_pointer dp = *link;
				GroupEntry *e = dsa_get_address(map->area, dp);
				DirSlot slots[GROUPMAP_MAX_SLOTS];
				int n = parse_dir(ENTRY_DIR(e), e->dirlen, slots);
				int64 delta = -(int64)alloc_size(entry_size(e, slots, n));
				dsa_pointer newdp = InvalidDsaPointer;
				bool has = false;
				int j;

				for (j = 0; j < n; j++)
					if (slot < 0 || slots[j].slot == slot)
						has = true;
				if (!has)
				{
					link = &e->next;
					continue;
				}
				if (slot >= 0)
				{
					Size newsize;

					newdp = rebuild_entry(map, e, e->hash, ENTRY_KEY(e), e->keylen,
										  slot, NULL, 0, false, &newsize);
					if (DsaPointerIsValid(newdp))
						delta += (int64)alloc_size(newsize);
				}
				if (DsaPointerIsValid(newdp))
				{
					GroupEntry *ne = dsa_get_address(map->area, newdp);

					ne->next = e->next;
					*link = newdp;
					link = &ne->next;
				}
				else
				{
					*link = e->next;
					part->count--;
					pg_atomic_sub_fetch_u64(&map->control->groups, 1);
				}
				dsa_free(map->area, dp);
				count_bytes(map, delta);
			}
		}
		LWLockRelease(&part->lock);
	}
}
