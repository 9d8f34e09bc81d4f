/*
 * sla_book: clocks in memory and a heap of what comes due (see sla_book.h).
 *
 * Cases live in one array (freed slots reused) found through an open-
 * addressing hash on the case id's bytes. Department and assignee names are
 * interned: a few hundred distinct strings serve a million cases.
 */
#include "sla_book.h"

#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_msg.h"

#define CASE_NO_MAX 24
#define EMPTY UINT32_MAX

typedef struct clock {
    int64_t start_ms, due_ms; /* due_ms SLA_NO_TIME: not running */
    uint32_t gen;
    int16_t stage; /* next stage to fire */
    bool in_flight;
} clock_t_;

typedef struct kase {
    unsigned char id[16];
    char id_text[37];
    char case_no[CASE_NO_MAX];
    char priority[4];
    const char *department, *assignee; /* interned; may be NULL */
    bool used;
    clock_t_ clocks[PL_SLA_NKIND];
} kase_t;

typedef struct entry {
    int64_t at_ms;
    uint32_t slot;
    uint32_t gen;
    uint8_t clock;
} entry_t;

struct sla_book {
    const route_plan_t *plan;
    kase_t *cases;
    uint32_t ncases, cap, live;
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t *table; /* slot indexes, EMPTY; size tsize (power of 2) */
    uint32_t tsize, tused;
    entry_t *heap;
    size_t nheap, heap_cap;
    size_t nclocks;
    /* The last clock generation handed out. Generations are unique in the
     * book, not per slot: a case removed and put back in another slot must
     * not match the firings and heap entries of its old clocks. */
    uint32_t gen_seq;
    char **interned;
    size_t ninterned, intern_cap;
};

/* ---- ids and interning ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static bool parse_id(const char *text, unsigned char out[16])
{
    int n = 0;
    for (const char *p = text; *p && n < 32; p++) {
        if (*p == '-')
            continue;
        int v = hexval(*p);
        if (v < 0)
            return false;
        if (n % 2 == 0)
            out[n / 2] = (unsigned char)(v << 4);
        else
            out[n / 2] |= (unsigned char)v;
        n++;
    }
    return n == 32;
}

static uint32_t hash_id(const unsigned char id[16])
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++)
        h = (h ^ id[i]) * 1099511628211ULL;
    return (uint32_t)(h ^ (h >> 32));
}

static const char *intern(sla_book_t *b, const char *s)
{
    if (!s || !*s)
        return NULL;
    for (size_t i = 0; i < b->ninterned; i++) /* few distinct names: a scan is enough */
        if (!strcmp(b->interned[i], s))
            return b->interned[i];
    if (b->ninterned == b->intern_cap) {
        b->intern_cap = b->intern_cap ? b->intern_cap * 2 : 64;
        b->interned = pl_realloc(b->interned, b->intern_cap * sizeof *b->interned);
    }
    return b->interned[b->ninterned++] = pl_strdup(s);
}

/* ---- the hash of case slots ---- */

static uint32_t *find(sla_book_t *b, const unsigned char id[16])
{
    uint32_t mask = b->tsize - 1;
    for (uint32_t i = hash_id(id) & mask;; i = (i + 1) & mask) {
        if (b->table[i] == EMPTY || !memcmp(b->cases[b->table[i]].id, id, 16))
            return &b->table[i];
    }
}

static void grow_table(sla_book_t *b)
{
    uint32_t *old = b->table, oldsize = b->tsize;
    b->tsize = oldsize ? oldsize * 2 : 1024;
    b->table = pl_malloc(b->tsize * sizeof *b->table);
    memset(b->table, 0xff, b->tsize * sizeof *b->table);
    b->tused = 0;
    for (uint32_t i = 0; i < oldsize; i++)
        if (old[i] != EMPTY) {
            *find(b, b->cases[old[i]].id) = old[i];
            b->tused++;
        }
    pl_free(old);
}

/* Removing from linear probing: re-insert the rest of the run. */
static void table_remove(sla_book_t *b, uint32_t *where)
{
    uint32_t mask = b->tsize - 1;
    uint32_t i = (uint32_t)(where - b->table);
    b->table[i] = EMPTY;
    b->tused--;
    for (uint32_t j = (i + 1) & mask; b->table[j] != EMPTY; j = (j + 1) & mask) {
        uint32_t slot = b->table[j];
        b->table[j] = EMPTY;
        *find(b, b->cases[slot].id) = slot;
    }
}

/* ---- the heap ---- */

static bool earlier(const entry_t *a, const entry_t *b)
{
    return a->at_ms < b->at_ms;
}

static void heap_push(sla_book_t *b, entry_t e)
{
    if (b->nheap == b->heap_cap) {
        b->heap_cap = b->heap_cap ? b->heap_cap * 2 : 1024;
        b->heap = pl_realloc(b->heap, b->heap_cap * sizeof *b->heap);
    }
    size_t i = b->nheap++;
    while (i > 0 && earlier(&e, &b->heap[(i - 1) / 2])) {
        b->heap[i] = b->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    b->heap[i] = e;
}

static entry_t heap_pop(sla_book_t *b)
{
    entry_t top = b->heap[0], last = b->heap[--b->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const entry_t *mv = &last;
        if (l < b->nheap && earlier(&b->heap[l], mv)) {
            m = l;
            mv = &b->heap[l];
        }
        if (r < b->nheap && earlier(&b->heap[r], mv))
            m = r;
        if (m == i)
            break;
        b->heap[i] = b->heap[m];
        i = m;
    }
    if (b->nheap)
        b->heap[i] = last;
    return top;
}

/* Whether a heap entry still describes its clock. */
static bool current(const sla_book_t *b, const entry_t *e)
{
    const kase_t *k = &b->cases[e->slot];
    const clock_t_ *c = &k->clocks[e->clock];
    return k->used && c->gen == e->gen && c->due_ms != SLA_NO_TIME && !c->in_flight;
}

/* ---- stages ---- */

static pl_sla_prio_t prio_of(const sla_book_t *b, const char *priority)
{
    return pl_sla_priority_or_default(route_plan_sla(b->plan), priority);
}

int64_t sla_book_stage_at(const sla_book_t *b, const char *priority, int64_t start_ms,
                          int64_t due_ms, int stage)
{
    const pl_sla_t *sla = route_plan_sla(b->plan);
    pl_sla_prio_t prio = prio_of(b, priority);
    if (stage == 0) {
        if (due_ms <= start_ms)
            return due_ms;
        return start_ms + (int64_t)((double)(due_ms - start_ms) * pl_sla_warn_at(sla, prio));
    }
    if (stage == 1)
        return due_ms;
    const pl_sla_step_t *steps;
    size_t n = pl_sla_ladder(sla, prio, &steps);
    if ((size_t)(stage - 2) >= n)
        return SLA_NO_TIME;
    return due_ms + steps[stage - 2].after_ms;
}

/* Puts the clock's next stage on the heap (nothing past the last rung). */
static void schedule(sla_book_t *b, uint32_t slot, pl_sla_kind_t kind)
{
    kase_t *k = &b->cases[slot];
    clock_t_ *c = &k->clocks[kind];
    if (c->due_ms == SLA_NO_TIME)
        return;
    int64_t at = sla_book_stage_at(b, k->priority, c->start_ms, c->due_ms, c->stage);
    if (at == SLA_NO_TIME)
        return;
    heap_push(b, (entry_t){at, slot, c->gen, (uint8_t)kind});
}

/* ---- the book ---- */

sla_book_t *sla_book_new(const route_plan_t *plan)
{
    sla_book_t *b = pl_calloc(1, sizeof *b);
    b->plan = plan;
    grow_table(b);
    return b;
}

void sla_book_destroy(sla_book_t **book_p)
{
    sla_book_t *b = *book_p;
    if (!b)
        return;
    for (size_t i = 0; i < b->ninterned; i++)
        pl_free(b->interned[i]);
    pl_free(b->interned);
    pl_free(b->cases);
    pl_free(b->free_slots);
    pl_free(b->table);
    pl_free(b->heap);
    pl_free(b);
    *book_p = NULL;
}

void sla_book_set_plan(sla_book_t *b, const route_plan_t *plan)
{
    b->plan = plan;
}

static uint32_t new_slot(sla_book_t *b)
{
    if (b->nfree)
        return b->free_slots[--b->nfree];
    if (b->ncases == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1024;
        b->cases = pl_realloc(b->cases, b->cap * sizeof *b->cases);
    }
    return b->ncases++;
}

static void drop(sla_book_t *b, uint32_t *where)
{
    uint32_t slot = *where;
    kase_t *k = &b->cases[slot];
    for (int i = 0; i < PL_SLA_NKIND; i++)
        if (k->clocks[i].due_ms != SLA_NO_TIME)
            b->nclocks--;
    k->used = false;
    table_remove(b, where);
    b->live--;
    b->free_slots = pl_realloc(b->free_slots, (b->nfree + 1) * sizeof *b->free_slots);
    b->free_slots[b->nfree++] = slot;
}

static bool any_clock(const sla_row_t *row)
{
    for (int i = 0; i < PL_SLA_NKIND; i++)
        if (row->due_ms[i] != SLA_NO_TIME)
            return true;
    return false;
}

void sla_book_put(sla_book_t *b, const sla_row_t *row)
{
    unsigned char id[16];
    if (!parse_id(row->case_id, id))
        return;
    uint32_t *where = find(b, id);
    if (!row->open || !any_clock(row)) {
        if (*where != EMPTY)
            drop(b, where);
        return;
    }
    if (*where == EMPTY) {
        if ((b->tused + 1) * 2 > b->tsize) {
            grow_table(b);
            where = find(b, id);
        }
        uint32_t slot = new_slot(b);
        /* Generation 0 matches nothing; the loop below gives every clock a
         * new one, so old heap entries of a reused slot never match. */
        memset(&b->cases[slot], 0, sizeof b->cases[slot]);
        memcpy(b->cases[slot].id, id, 16);
        for (int i = 0; i < PL_SLA_NKIND; i++)
            b->cases[slot].clocks[i].due_ms = SLA_NO_TIME;
        *where = slot;
        b->tused++;
        b->live++;
    }
    uint32_t slot = *where;
    kase_t *k = &b->cases[slot];
    k->used = true;
    snprintf(k->id_text, sizeof k->id_text, "%s", row->case_id);
    snprintf(k->case_no, sizeof k->case_no, "%s", row->case_no ? row->case_no : "");
    snprintf(k->priority, sizeof k->priority, "%s", row->priority ? row->priority : "");
    k->department = intern(b, row->department);
    k->assignee = intern(b, row->assignee);
    for (int i = 0; i < PL_SLA_NKIND; i++) {
        clock_t_ *c = &k->clocks[i];
        bool was = c->due_ms != SLA_NO_TIME;
        bool same = was && c->due_ms == row->due_ms[i] && c->start_ms == row->start_ms[i];
        bool now = row->due_ms[i] != SLA_NO_TIME;
        b->nclocks += (size_t)now - (size_t)was;
        if (same && c->stage > row->stage[i]) /* we are ahead of the database */
            continue;
        c->gen = ++b->gen_seq;
        c->in_flight = false;
        c->due_ms = row->due_ms[i];
        c->start_ms = row->start_ms[i];
        c->stage = (int16_t)(row->stage[i] + 1);
        schedule(b, slot, (pl_sla_kind_t)i);
    }
}

size_t sla_book_cases(const sla_book_t *b)
{
    return b->live;
}

size_t sla_book_clocks(const sla_book_t *b)
{
    return b->nclocks;
}

size_t sla_book_memory(const sla_book_t *b)
{
    return sizeof *b + b->cap * sizeof *b->cases + b->tsize * sizeof *b->table +
           b->heap_cap * sizeof *b->heap + b->nfree * sizeof *b->free_slots;
}

int64_t sla_book_next_ms(sla_book_t *b)
{
    while (b->nheap && !current(b, &b->heap[0]))
        (void)heap_pop(b);
    return b->nheap ? b->heap[0].at_ms : SLA_NO_TIME;
}

static const char *person(const sla_book_t *b, const kase_t *k, pl_sla_role_t role)
{
    if (role == PL_SLA_ASSIGNEE && k->assignee)
        return k->assignee;
    const char *who = k->department
                          ? route_plan_escalation_to(b->plan, k->department,
                                                     role == PL_SLA_ASSIGNEE ? PL_SLA_SUPERVISOR
                                                                             : role)
                          : NULL;
    return who ? who : pl_sla_role_name(role);
}

static void describe(const sla_book_t *b, const kase_t *k, pl_sla_kind_t kind, int stage,
                     sla_firing_t *f)
{
    const pl_sla_t *sla = route_plan_sla(b->plan);
    f->case_id = k->id_text;
    f->case_no = k->case_no;
    f->priority = k->priority[0] ? k->priority : NULL;
    f->department = k->department;
    f->assignee = k->assignee;
    f->clock = kind;
    f->due_ms = k->clocks[kind].due_ms;
    f->stage = stage;
    f->gen = k->clocks[kind].gen;
    f->level = 0;
    if (stage == 0) {
        f->type = PL_EV_SLA_WARNING;
        f->role = pl_sla_warn_to(sla);
    } else if (stage == 1) {
        f->type = PL_EV_SLA_BREACHED;
        f->role = PL_SLA_ASSIGNEE;
    } else {
        const pl_sla_step_t *steps;
        (void)pl_sla_ladder(sla, prio_of(b, k->priority), &steps); /* stage was checked */
        f->type = PL_EV_ESCALATED;
        f->level = stage - 1;
        f->role = steps[stage - 2].to;
    }
    f->to = person(b, k, f->role);
}

size_t sla_book_take_due(sla_book_t *b, int64_t now_ms, sla_firing_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && b->nheap) {
        if (!current(b, &b->heap[0])) {
            (void)heap_pop(b);
            continue;
        }
        if (b->heap[0].at_ms > now_ms)
            break;
        entry_t e = heap_pop(b);
        kase_t *k = &b->cases[e.slot];
        const clock_t_ *c = &k->clocks[e.clock];
        /* Scheduled under a longer ladder (a reload, another priority since):
         * nothing is left to fire for this clock. */
        if (sla_book_stage_at(b, k->priority, c->start_ms, c->due_ms, c->stage) == SLA_NO_TIME)
            continue;
        describe(b, k, (pl_sla_kind_t)e.clock, k->clocks[e.clock].stage, &out[n]);
        out[n].at_ms = e.at_ms;
        k->clocks[e.clock].in_flight = true;
        n++;
    }
    return n;
}

static clock_t_ *clock_of(sla_book_t *b, const char *case_id, pl_sla_kind_t kind, uint32_t gen,
                          uint32_t *slot)
{
    unsigned char id[16];
    if (!parse_id(case_id, id))
        return NULL;
    uint32_t *where = find(b, id);
    if (*where == EMPTY)
        return NULL;
    clock_t_ *c = &b->cases[*where].clocks[kind];
    *slot = *where;
    return c->gen == gen ? c : NULL;
}

void sla_book_fired(sla_book_t *b, const char *case_id, pl_sla_kind_t kind, uint32_t gen)
{
    uint32_t slot;
    clock_t_ *c = clock_of(b, case_id, kind, gen, &slot);
    if (!c)
        return;
    c->in_flight = false;
    c->stage++;
    c->gen = ++b->gen_seq;
    schedule(b, slot, kind);
}

void sla_book_retry(sla_book_t *b, const char *case_id, pl_sla_kind_t kind, uint32_t gen,
                    int64_t at_ms)
{
    uint32_t slot;
    clock_t_ *c = clock_of(b, case_id, kind, gen, &slot);
    if (!c)
        return;
    c->in_flight = false;
    c->gen = ++b->gen_seq;
    heap_push(b, (entry_t){at_ms, slot, c->gen, (uint8_t)kind});
}
