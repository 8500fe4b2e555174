//! Writes handed over between processes, so that one transaction commits the writes of many.
//!
//! Threads of one process share a transaction through group commit; processes could not. A
//! process writing alone commits one write per transaction, and a commit costs it some 40 µs
//! besides the write itself (taking and releasing the write lock, rereading the pages another
//! process's commit made stale in its page cache, writing the WAL), all of it holding the
//! database's one write lock. 8 processes writing one key each took turns at that lock one
//! write at a time, about as fast as 8 processes of plain SQLite.
//!
//! So a process that has a lone write to make, and finds the write turn (see `write_turns`)
//! held by another process, does not wait for the turn: it posts the write in a *slot* on the
//! board (see `board`) and waits for an answer there. The process holding the turn takes the
//! writes posted before it commits, waiting a little (yielding) for as many as it took the
//! last time and those posted after, since posters come back only once their last write is
//! durable; it applies each in a savepoint of its own, logging its keys as nobody's (so every
//! process's LRU forgets them, the poster's too), and commits them with its own; it makes the
//! commit durable (the fsync its own writes need anyway), and only then answers each slot with
//! the outcome and what to sync, and wakes its poster: once, where answering before the fsync
//! woke it to wait for that fsync and again when it ended. The poster still makes sure the
//! commit is durable (through `fsync_board`, where an fsync that failed in the holder fails it
//! too) before it acknowledges anything: durability is exactly that of writing it itself. A
//! write that the holder could not apply (a quota, a cache deleted meanwhile) is answered
//! *refused*, rolled back, and its poster writes it itself, to report the error exactly as it
//! would have. When the holder gives the turn up, before its fsync, it wakes the poster of a
//! write still waiting, which then takes the turn and commits the writes posted since.
//!
//! Only a lone `set`, `delete` or queue `put` small enough for a slot is handed over;
//! everything else, and every batch of several writes, goes the ordinary way. (A queue's
//! `take` never is: its poster must learn what it took, and could not from a holder that died.)
//!
//! Nothing is lost when a process dies. A poster that dies leaves a slot that anyone may take
//! back (once its holder, if it had one, has answered or died too). A holder that dies with
//! writes taken either committed them or not, all at once: it records each one it takes, in
//! the same transaction, in the `handoffs` table (board and slot, poster, poster's number for
//! the write), so a poster that finds its holder gone reads that row to learn which, and
//! writes it itself when it was not committed. A holder that lives but does
//! not answer within the busy timeout (stopped in a debugger) leaves its poster with an error
//! that says the write may or may not be stored, and the slot abandoned to the holder.

use std::sync::Arc;
use std::sync::atomic::{
    AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::time::{Duration, Instant};

use super::board::Board;
use super::write_turns;
use crate::store::{CacheId, ChangeToken, HandoffStats, QueueId, Target, Write};
use crate::{Json, Quota, Result};

/// Slots on a board: more posters than this at once write the ordinary way.
pub(super) const SLOTS: usize = 32;
/// The bytes a slot takes on the board.
pub(super) const SLOT_BYTES: usize = 8192;
/// What a slot holds besides the write.
const HEADER_BYTES: usize = 72;
/// The most bytes of an encoded write a slot holds.
const PAYLOAD_BYTES: usize = SLOT_BYTES - HEADER_BYTES;
/// How often a poster looks at its slot without being woken (a holder that died wakes nobody).
const RECHECK: Duration = Duration::from_millis(2);
/// How long the holder of the turn waits, at most, for the writes it expects to be posted.
/// Posters come back only once their last write is durable, a few hundred µs after the last
/// commit; waiting less gathered fewer per transaction and did worse (measured: none, 100 µs
/// and 300 µs against 1 ms).
const GATHER_WAIT: Duration = Duration::from_millis(1);

/// What a slot is doing: the low byte of [`Slot::state`]. The rest of the word is the mark
/// (see [`Board::me`]) of the process the slot waits on: its poster, or its holder while
/// [`TAKEN`] or [`ABANDONED`].
mod state {
    /// Nobody's.
    pub(super) const FREE: u64 = 0;
    /// Its poster is writing a write into it.
    pub(super) const FILLING: u64 = 1;
    /// A write waits in it for a holder of the turn.
    pub(super) const POSTED: u64 = 2;
    /// A holder is applying it.
    pub(super) const TAKEN: u64 = 3;
    /// Answered; its poster reads the answer and frees it.
    pub(super) const ANSWERED: u64 = 4;
    /// Its poster gave up waiting; its holder frees it when done.
    pub(super) const ABANDONED: u64 = 5;
}
use state::*;

/// [`Slot::outcome`] of a write its holder did not apply.
const REFUSED: u64 = u64::MAX;

fn word(kind: u64, mark: u64) -> u64 {
    mark << 8 | kind
}

fn kind(word: u64) -> u64 {
    word & 0xff
}

fn mark(word: u64) -> u64 {
    word >> 8
}

/// One slot, laid out as it is on the board.
#[repr(C)]
pub(super) struct Slot {
    /// What the slot is doing and for whom (see [`state`]); taken by compare-and-swap.
    state: AtomicU64,
    /// Bumped to wake its poster (a futex word).
    signal: AtomicU32,
    /// The length of the encoded write.
    len: AtomicU32,
    /// The poster's mark.
    poster: AtomicU64,
    /// The poster's writer id (recorded in the `handoffs` table).
    writer: AtomicI64,
    /// The poster's number for this write, never reused by it.
    seq: AtomicU64,
    /// The answer: how many keys a delete removed (0 for a set), or [`REFUSED`].
    outcome: AtomicU64,
    /// The answer: the commit's change token and fsync ticket (see `durable::Seen`).
    token: [AtomicU64; 2],
    ticket: AtomicU64,
    /// The encoded write (see [`encode`]).
    payload: [AtomicU8; PAYLOAD_BYTES],
}

const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_BYTES);
const _: () = assert!(SLOTS <= 64, "a slot's row key holds its number in 6 bits");

/// Posts the `encoded` write in `slot`, [`FILLING`] for it, as `poster` (its mark), whose
/// writer id is `writer` (recorded in the `handoffs` table), its write number `seq`.
fn post(slot: &Slot, encoded: &[u8], writer: i64, seq: u64, poster: u64) {
    for (cell, byte) in slot.payload.iter().zip(encoded) {
        cell.store(*byte, std::sync::atomic::Ordering::Relaxed);
    }
    slot.len.store(encoded.len() as u32, SeqCst);
    slot.writer.store(writer, SeqCst);
    slot.seq.store(seq, SeqCst);
    slot.poster.store(poster, SeqCst);
    slot.state.store(word(POSTED, poster), SeqCst);
}

/// What became of a write handed over.
pub(super) enum HandedOver {
    /// Not taken by anyone (no slot was free, the turn came free, or its holder refused it):
    /// the caller writes it itself.
    NotTaken,
    /// Committed by another process: `count` keys removed (a delete), durable once the
    /// caller syncs up to `token` and `ticket`.
    Committed { count: u64, token: ChangeToken, ticket: u64 },
    /// The process that took it died. Whether it committed it is in the `handoffs` table:
    /// the row of `slot` ([`Handoffs::row_of`]) holding `seq` (and the poster's writer id).
    /// Then [`Handoffs::release`].
    HolderGone { slot: usize, seq: u64 },
    /// Its holder lives but did not answer by the deadline: it may still commit it.
    TimedOut,
}

/// A write taken from a slot by the holder of the turn.
pub(super) struct Taken {
    pub(super) slot: usize,
    /// The poster's writer id (recorded in the `handoffs` table).
    pub(super) writer: i64,
    pub(super) seq: u64,
    pub(super) write: Write,
    /// How many keys it removed, once applied; `None` until then, or when refused.
    count: Option<u64>,
}

impl Taken {
    /// The keys the write changes, each with its cache.
    pub(super) fn changed_keys(&self) -> Vec<(CacheId, String)> {
        match &self.write {
            Write::Set { cache, entries, .. } => {
                entries.iter().map(|(key, _)| (cache.id, key.clone())).collect()
            }
            Write::Delete { cache, keys } => keys.iter().map(|key| (cache.id, key.clone())).collect(),
            _ => Vec::new(),
        }
    }
}

/// The slots of one database's board, as one process posts to them and takes from them.
pub(super) struct Handoffs {
    board: Arc<Board>,
    /// This process's name in the change log.
    writer: i64,
    /// The number of this process's next write posted.
    next_seq: AtomicU64,
    /// How many writes the next transaction waits for: as many as the last one took, and
    /// those posted after.
    expected: AtomicUsize,
    /// This process's writes that another committed.
    handed_over: AtomicU64,
    /// Other processes' writes that this one committed.
    committed_for_others: AtomicU64,
}

/// The writes handed over to one transaction, answered when it drops: committed, once
/// [`Gathered::commit`] has said where, or else refused, so that whatever ends the
/// transaction, no poster waits for an answer that never comes.
pub(super) struct Gathered<'h> {
    handoffs: &'h Handoffs,
    taken: Vec<Taken>,
    /// The commit's change token and fsync ticket.
    committed: Option<(ChangeToken, u64)>,
}

impl Gathered<'_> {
    /// The writes applied (not refused): those the commit will carry.
    pub(super) fn applied(&self) -> impl Iterator<Item = &Taken> {
        self.taken.iter().filter(|write| write.count.is_some())
    }

    /// Answers the writes applied as committed, durable once their posters sync up to
    /// `token` and `ticket`.
    pub(super) fn commit(mut self, token: ChangeToken, ticket: u64) {
        self.committed = Some((token, ticket));
    }
}

impl Drop for Gathered<'_> {
    fn drop(&mut self) {
        self.handoffs.answer_all(&self.taken, self.committed);
    }
}

impl Handoffs {
    /// The slots of `board`, for a process logging its changes as `writer`. A board that only
    /// this process uses has none.
    pub(super) fn new(board: Arc<Board>, writer: i64) -> Handoffs {
        Handoffs {
            board,
            writer,
            next_seq: AtomicU64::new(1),
            expected: AtomicUsize::new(0),
            handed_over: AtomicU64::new(0),
            committed_for_others: AtomicU64::new(0),
        }
    }

    /// Writes handed over so far, each way.
    pub(super) fn stats(&self) -> HandoffStats {
        HandoffStats {
            handed_over: self.handed_over.load(Relaxed),
            committed_for_others: self.committed_for_others.load(Relaxed),
        }
    }

    fn slots(&self) -> &[Slot] {
        self.board.slots()
    }

    /// The key of `slot`'s row in the `handoffs` table: its number, with the board's name
    /// above it, since another board of the database (see `Board::id`) numbers its slots
    /// alike.
    pub(super) fn row_of(&self, slot: usize) -> i64 {
        (self.board.id() << 6 | slot as u64) as i64
    }

    /// Whether another process's writer holds the write turn now.
    fn turn_held_elsewhere(&self) -> bool {
        write_turns::held_elsewhere(&self.board).is_some()
    }

    /// Whether the write turn was held by a process that is gone, which takes no write; the
    /// turn is then freed.
    fn turn_holder_gone(&self) -> bool {
        write_turns::held_elsewhere(&self.board)
            .is_some_and(|holder| write_turns::free_if_gone(&self.board, holder))
    }

    /// Hands `write` over to the process holding the write turn, if one does, and waits for
    /// its answer, until `deadline` at most.
    pub(super) fn hand_over(&self, write: &Write, deadline: Instant) -> HandedOver {
        if self.slots().is_empty() || !self.turn_held_elsewhere() {
            return HandedOver::NotTaken;
        }
        let mut encoded = Vec::new();
        if !encode(write, &mut encoded) || encoded.len() > PAYLOAD_BYTES {
            return HandedOver::NotTaken;
        }
        let Some((index, slot)) = self.claim() else { return HandedOver::NotTaken };
        let seq = self.next_seq.fetch_add(1, SeqCst);
        post(slot, &encoded, self.writer, seq, self.board.me());
        let handed = self.wait(index, slot, seq, deadline);
        if let HandedOver::Committed { .. } = handed {
            self.handed_over.fetch_add(1, Relaxed);
        }
        handed
    }

    /// A free slot, or one whose poster is gone, now [`FILLING`] for this process (its
    /// poster).
    fn claim(&self) -> Option<(usize, &Slot)> {
        // A free slot first, which costs no system call; only when none is, one left by a
        // process that is gone (each look at a process is one).
        self.claim_where(|_, seen| kind(seen) == FREE)
            .or_else(|| self.claim_where(|slot, seen| self.left_by_the_gone(slot, seen)))
    }

    /// The first slot that `reclaimable` accepts in the state it is in, now [`FILLING`] for
    /// this process.
    fn claim_where(&self, reclaimable: impl Fn(&Slot, u64) -> bool) -> Option<(usize, &Slot)> {
        let me = self.board.me();
        self.slots().iter().enumerate().find(|(_, slot)| {
            let seen = slot.state.load(SeqCst);
            if reclaimable(slot, seen)
                && slot.state.compare_exchange(seen, word(FILLING, me), SeqCst, SeqCst).is_ok()
            {
                slot.poster.store(me, SeqCst);
                return true;
            }
            false
        })
    }

    /// Whether `slot`, in state `seen`, was left by a process that is gone, for anyone to take.
    fn left_by_the_gone(&self, slot: &Slot, seen: u64) -> bool {
        match kind(seen) {
            // Its poster (left filling, posted or answered) or its holder (abandoned).
            FILLING | POSTED | ANSWERED | ABANDONED => self.board.is_gone(mark(seen)),
            // A slot taken is its holder's until answered, and then its poster's, who frees
            // it also when the holder dies: unless both are gone.
            TAKEN => self.board.is_gone(mark(seen)) && self.board.is_gone(slot.poster.load(SeqCst)),
            _ => false,
        }
    }

    /// Waits for the answer to the write posted in `slot`, until `deadline` at most.
    fn wait(&self, index: usize, slot: &Slot, seq: u64, deadline: Instant) -> HandedOver {
        let me = self.board.me();
        // Whether the last wait ended unwoken: then the holder is looked at.
        let mut unwoken = false;
        loop {
            let signal = slot.signal.load(SeqCst);
            let seen = slot.state.load(SeqCst);
            let out_of_patience = Instant::now() >= deadline;
            match kind(seen) {
                ANSWERED => {
                    let count = slot.outcome.load(SeqCst);
                    let token = ChangeToken([slot.token[0].load(SeqCst), slot.token[1].load(SeqCst)]);
                    let ticket = slot.ticket.load(SeqCst);
                    slot.state.store(word(FREE, 0), SeqCst);
                    return match count {
                        REFUSED => HandedOver::NotTaken,
                        count => HandedOver::Committed { count, token, ticket },
                    };
                }
                // Still waiting for a holder, while none holds the turn (or one that is gone):
                // take it back and write it ourselves (as the poster woken when a holder gives
                // the turn up does).
                POSTED
                    if out_of_patience
                        || !self.turn_held_elsewhere()
                        || (unwoken && self.turn_holder_gone()) =>
                {
                    if slot.state.compare_exchange(seen, word(FREE, 0), SeqCst, SeqCst).is_ok() {
                        return HandedOver::NotTaken;
                    }
                    continue;
                }
                TAKEN if self.board.is_gone(mark(seen)) => {
                    return HandedOver::HolderGone { slot: index, seq };
                }
                TAKEN if out_of_patience => {
                    if slot.state.compare_exchange(seen, word(ABANDONED, mark(seen)), SeqCst, SeqCst).is_ok()
                    {
                        return HandedOver::TimedOut;
                    }
                    continue;
                }
                POSTED | TAKEN => {}
                // Nobody else moves a slot of a live poster out of these states.
                _ => {
                    tracing::warn!(
                        slot = index,
                        state = seen,
                        me,
                        "a handed-over write's slot changed hands"
                    );
                    return HandedOver::NotTaken;
                }
            }
            unwoken = !self.board.wait(&slot.signal, signal, RECHECK);
        }
    }

    /// Frees a slot whose holder was found gone, once its fate is known: `committed` when
    /// the holder committed it.
    pub(super) fn release(&self, slot: usize, committed: bool) {
        if let Some(slot) = self.slots().get(slot) {
            slot.state.store(word(FREE, 0), SeqCst);
        }
        if committed {
            self.handed_over.fetch_add(1, Relaxed);
        }
    }

    /// For the holder of the turn, before it commits: takes the writes posted and `apply`s
    /// each as it comes, until as many as expected have come or [`GATHER_WAIT`] has passed,
    /// yielding the processor in between (to the posters first). `apply` answers how many keys
    /// the write removed, or `None` when it refuses it (the poster then writes it itself); its
    /// error fails the transaction, and every write taken is refused.
    pub(super) fn gather(
        &self,
        mut apply: impl FnMut(&Taken) -> Result<Option<u64>>,
    ) -> Result<Gathered<'_>> {
        let mut gathered = Gathered { handoffs: self, taken: Vec::new(), committed: None };
        let expected = self.expected.load(Relaxed);
        let deadline = Instant::now() + GATHER_WAIT;
        loop {
            let start = gathered.taken.len();
            gathered.taken.extend(self.take());
            for write in &mut gathered.taken[start..] {
                write.count = apply(write)?;
            }
            if gathered.taken.len() >= expected || Instant::now() >= deadline {
                break;
            }
            std::thread::yield_now();
        }
        self.expected.store(gathered.taken.len() + self.posted(), Relaxed);
        Ok(gathered)
    }

    /// Takes every write posted, for the holder of the write turn to apply. A write that
    /// cannot be read is refused at once.
    fn take(&self) -> Vec<Taken> {
        let me = self.board.me();
        let mut taken = Vec::new();
        for (index, slot) in self.slots().iter().enumerate() {
            let seen = slot.state.load(SeqCst);
            if kind(seen) != POSTED {
                continue;
            }
            // A write whose poster died waiting was never acknowledged, and must not land
            // now: it would go over writes others made since its poster died, and had
            // acknowledged (this holder's own, in this very transaction). Its slot is freed.
            // A poster that dies after this look dies while its write commits.
            if self.board.is_gone(mark(seen)) {
                let _ = slot.state.compare_exchange(seen, word(FREE, 0), SeqCst, SeqCst);
                continue;
            }
            if slot.state.compare_exchange(seen, word(TAKEN, me), SeqCst, SeqCst).is_err() {
                continue;
            }
            let len = (slot.len.load(SeqCst) as usize).min(PAYLOAD_BYTES);
            let bytes: Vec<u8> = slot.payload[..len]
                .iter()
                .map(|cell| cell.load(std::sync::atomic::Ordering::Relaxed))
                .collect();
            let (writer, seq) = (slot.writer.load(SeqCst), slot.seq.load(SeqCst));
            match decode(&bytes) {
                Some(write) => taken.push(Taken { slot: index, writer, seq, write, count: None }),
                None => {
                    tracing::warn!(
                        slot = index,
                        "a write handed over could not be read; its poster writes it"
                    );
                    self.answer(index, REFUSED, ChangeToken::default(), 0);
                }
            }
        }
        taken
    }

    /// Answers the writes taken: committed (those applied) up to `token` and `ticket`, or
    /// refused. Wakes their posters.
    fn answer_all(&self, taken: &[Taken], committed: Option<(ChangeToken, u64)>) {
        for write in taken {
            match (committed, write.count) {
                (Some((token, ticket)), Some(count)) => {
                    self.answer(write.slot, count, token, ticket);
                    self.committed_for_others.fetch_add(1, Relaxed);
                }
                _ => self.answer(write.slot, REFUSED, ChangeToken::default(), 0),
            }
        }
    }

    fn answer(&self, index: usize, outcome: u64, token: ChangeToken, ticket: u64) {
        let Some(slot) = self.slots().get(index) else { return };
        let me = self.board.me();
        slot.outcome.store(outcome, SeqCst);
        slot.token[0].store(token.0[0], SeqCst);
        slot.token[1].store(token.0[1], SeqCst);
        slot.ticket.store(ticket, SeqCst);
        let poster = slot.poster.load(SeqCst);
        if slot.state.compare_exchange(word(TAKEN, me), word(ANSWERED, poster), SeqCst, SeqCst).is_err() {
            // Abandoned by its poster: nobody reads the answer.
            let _ = slot.state.compare_exchange(word(ABANDONED, me), word(FREE, 0), SeqCst, SeqCst);
            return;
        }
        self.board.bump(&slot.signal, 1);
    }

    /// How many writes are posted now, waiting for a holder.
    fn posted(&self) -> usize {
        self.slots().iter().filter(|slot| kind(slot.state.load(SeqCst)) == POSTED).count()
    }

    /// After the turn is given up: wakes the poster of a write still waiting, to take the
    /// turn and commit it with the others posted since. A poster that died wakes to nothing,
    /// so the first live one is woken; without that, the live posters behind a dead one
    /// waited out their [`RECHECK`].
    pub(super) fn wake_next_holder(&self) {
        let waiting = |slot: &&Slot| {
            let seen = slot.state.load(SeqCst);
            kind(seen) == POSTED && !self.board.is_gone(mark(seen))
        };
        if let Some(slot) = self.slots().iter().find(waiting) {
            self.board.bump(&slot.signal, 1);
        }
    }
}

#[cfg(test)]
impl Handoffs {
    /// The board the slots are on.
    pub(super) fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// Waits (10 s at most) until some write is posted, and takes what is, as
    /// [`Handoffs::gather`] does, without applying it.
    pub(super) fn take_once_posted(&self) -> Vec<Taken> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let taken = self.take();
            if !taken.is_empty() {
                return taken;
            }
            assert!(Instant::now() < deadline, "nothing was posted");
            std::thread::yield_now();
        }
    }

    /// As if the process that took the write in `slot` had died: `gone` holds it.
    pub(super) fn taken_by(&self, slot: usize, gone: u64) {
        self.slots()[slot].state.store(word(TAKEN, gone), SeqCst);
    }

    /// Posts `write` as the process `poster` (its mark) would, named `writer`, as its write
    /// `seq`, without waiting: the slot it is in.
    pub(super) fn post_as(&self, write: &Write, poster: u64, writer: i64, seq: u64) -> usize {
        let mut encoded = Vec::new();
        assert!(encode(write, &mut encoded));
        let (index, slot) = self.claim().expect("a free slot");
        post(slot, &encoded, writer, seq, poster);
        index
    }

    /// Whether `slot` is free (for the store's tests).
    #[cfg(test)]
    pub(super) fn is_free(&self, slot: usize) -> bool {
        kind(self.slots()[slot].state.load(SeqCst)) == FREE
    }

    /// The answer in `slot`: `None` until answered, then the count, or `None` when refused.
    pub(super) fn answer_in(&self, slot: usize) -> Option<Option<u64>> {
        let slot = &self.slots()[slot];
        (kind(slot.state.load(SeqCst)) == ANSWERED)
            .then(|| Some(slot.outcome.load(SeqCst)).filter(|count| *count != REFUSED))
    }
}

// The encoding of a write in a slot: a kind byte, then fields in order; integers little-endian,
// strings as a u32 length and UTF-8 bytes, options as a 0/1 byte and the value.

const SET: u8 = 1;
const DELETE: u8 = 2;
const PUT: u8 = 3;
/// A set whose entries expire: as [`SET`], then the expiry (unix ms, i64).
const SET_EXPIRING: u8 = 4;

/// Encodes a write that may be handed over into `out`; false for any other.
fn encode(write: &Write, out: &mut Vec<u8>) -> bool {
    let put_str = |out: &mut Vec<u8>, text: &str| {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    };
    let put_u64 = |out: &mut Vec<u8>, value: Option<u64>| {
        out.push(u8::from(value.is_some()));
        out.extend_from_slice(&value.unwrap_or(0).to_le_bytes());
    };
    let put_target = |out: &mut Vec<u8>, kind: u8, id: i64, name: &str, count: usize| {
        out.push(kind);
        out.extend_from_slice(&id.to_le_bytes());
        put_str(out, name);
        out.extend_from_slice(&(count as u32).to_le_bytes());
    };
    let put_quota = |out: &mut Vec<u8>, quota: &Quota| {
        put_u64(out, quota.max_entries);
        put_u64(out, quota.max_bytes);
        out.push(u8::from(quota.shared_by_prefix.is_some()));
        put_str(out, quota.shared_by_prefix.as_deref().unwrap_or(""));
    };
    match write {
        Write::Set { cache, entries, expires_at, quota } => {
            let kind = if expires_at.is_some() { SET_EXPIRING } else { SET };
            put_target(out, kind, cache.id.0, &cache.name, entries.len());
            for (key, value) in entries {
                put_str(out, key);
                put_str(out, value.as_str());
            }
            put_quota(out, quota);
            if let Some(expires_at) = expires_at {
                out.extend_from_slice(&expires_at.to_le_bytes());
            }
            true
        }
        Write::Delete { cache, keys } => {
            put_target(out, DELETE, cache.id.0, &cache.name, keys.len());
            keys.iter().for_each(|key| put_str(out, key));
            true
        }
        // An append is as safe to hand over as a set: the `handoffs` row tells a poster whose
        // holder died whether it was committed, so it is never appended twice. (A queue's
        // `take` is not: what it took is answered to its caller, and a poster's holder that
        // died could not answer it.)
        Write::Put { queue, values, quota } => {
            put_target(out, PUT, queue.id.0, &queue.name, values.len());
            values.iter().for_each(|value| put_str(out, value.as_str()));
            put_quota(out, quota);
            true
        }
        _ => false,
    }
}

/// Reads back what [`encode`] wrote; `None` for anything else.
fn decode(bytes: &[u8]) -> Option<Write> {
    let mut reader = Reader(bytes);
    let kind = reader.byte()?;
    let id = i64::from_le_bytes(reader.array()?);
    let name: Arc<str> = reader.text()?.into();
    let count = u32::from_le_bytes(reader.array()?) as usize;
    let write = match kind {
        SET | SET_EXPIRING => {
            let entries = (0..count)
                .map(|_| Some((reader.text()?.to_owned(), Json::trusted(reader.text()?))))
                .collect::<Option<Vec<_>>>()?;
            let quota = reader.quota()?;
            let expires_at = match kind {
                SET_EXPIRING => Some(i64::from_le_bytes(reader.array()?)),
                _ => None,
            };
            Write::Set { cache: Target { id: CacheId(id), name }, entries, expires_at, quota }
        }
        DELETE => {
            let keys = (0..count).map(|_| reader.text().map(str::to_owned)).collect::<Option<Vec<_>>>()?;
            Write::Delete { cache: Target { id: CacheId(id), name }, keys }
        }
        PUT => {
            let values = (0..count).map(|_| reader.text().map(Json::trusted)).collect::<Option<Vec<_>>>()?;
            Write::Put { queue: Target { id: QueueId(id), name }, values, quota: reader.quota()? }
        }
        _ => return None,
    };
    reader.0.is_empty().then_some(write)
}

/// Reads an encoded write front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn option(&mut self) -> Option<Option<u64>> {
        let present = self.byte()? == 1;
        let value = u64::from_le_bytes(self.array()?);
        Some(present.then_some(value))
    }

    fn quota(&mut self) -> Option<Quota> {
        let max_entries = self.option()?;
        let max_bytes = self.option()?;
        let shared = self.byte()? == 1;
        let prefix = self.text()?;
        Some(Quota { max_entries, max_bytes, shared_by_prefix: shared.then(|| prefix.into()) })
    }
}

/// (Slots are shared only where a process can be told gone: on Linux.)
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::super::board::test_processes::{OtherProcess, gone_mark};
    use super::*;

    /// A poster and a holder on the board of one database, with the turn held by another
    /// process.
    struct Pair {
        poster: Handoffs,
        holder: Handoffs,
        other: OtherProcess,
        db: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    fn pair() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let (poster, taker) = (Arc::new(Board::open(&db)), Arc::new(Board::open(&db)));
        assert!(poster.is_shared());
        let other = OtherProcess::start(&db);
        poster.counters().writer.store(other.mark(), SeqCst);
        Pair { poster: Handoffs::new(poster, 11), holder: Handoffs::new(taker, 22), other, db, _dir: dir }
    }

    /// Whether every slot is free.
    fn all_free(handoffs: &Handoffs) -> bool {
        handoffs.slots().iter().all(|slot| slot.state.load(SeqCst) == FREE)
    }

    fn set_write() -> Write {
        Write::Set {
            cache: Target { id: CacheId(7), name: "c".into() },
            entries: vec![
                ("k".into(), Json::parse(r#"{"a": [1, "é"]}"#).unwrap()),
                ("".into(), Json::parse("2").unwrap()),
            ],
            expires_at: None,
            quota: Quota { max_entries: Some(5), max_bytes: None, shared_by_prefix: Some("tenant-".into()) },
        }
    }

    fn put_write() -> Write {
        Write::Put {
            queue: Target { id: QueueId(9), name: "jobs".into() },
            values: vec![Json::parse(r#"{"resize": "cat.png"}"#).unwrap(), Json::parse("[]").unwrap()],
            quota: Quota { max_entries: None, max_bytes: Some(1 << 20), shared_by_prefix: None },
        }
    }

    /// Takes the writes posted, until the poster named 11 has posted one.
    fn take(holder: &Handoffs) -> Vec<Taken> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut taken: Vec<Taken> = Vec::new();
        while !taken.iter().any(|write| write.writer == 11) {
            assert!(Instant::now() < deadline, "nothing was posted");
            taken.extend(holder.take());
            std::thread::yield_now();
        }
        taken
    }

    #[test]
    fn a_write_posted_is_taken_by_the_holder_answered_and_its_poster_woken() {
        let Pair { poster, holder, .. } = &pair();
        let token = ChangeToken([3, 4]);
        std::thread::scope(|scope| {
            let posted =
                scope.spawn(|| poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(30)));
            let mut taken = take(holder);
            assert_eq!(format!("{:?}", taken[0].write), format!("{:?}", set_write()));
            assert_eq!((taken[0].writer, taken[0].seq), (11, 1), "the poster's writer id and number");
            taken[0].count = Some(0);
            holder.answer_all(&taken, Some((token, 9)));
            match posted.join().unwrap() {
                HandedOver::Committed { count: 0, token: answered, ticket: 9 } => assert_eq!(answered, token),
                _ => panic!("not answered as committed"),
            }
        });
        assert!(all_free(poster), "the slot is free again");

        // A delete's count comes back too.
        let delete =
            Write::Delete { cache: Target { id: CacheId(7), name: "c".into() }, keys: vec!["k".into()] };
        std::thread::scope(|scope| {
            let posted = scope.spawn(|| poster.hand_over(&delete, Instant::now() + Duration::from_secs(30)));
            let mut taken = take(holder);
            assert_eq!(taken[0].seq, 2, "a new number for each write");
            taken[0].count = Some(1);
            holder.answer_all(&taken, Some((token, 10)));
            assert!(matches!(posted.join().unwrap(), HandedOver::Committed { count: 1, ticket: 10, .. }));
        });
    }

    #[test]
    fn a_write_refused_or_not_committed_is_left_to_its_poster() {
        let Pair { poster, holder, .. } = &pair();
        for (count, committed) in [(None, Some((ChangeToken([1, 2]), 1))), (Some(0), None)] {
            std::thread::scope(|scope| {
                let posted =
                    scope.spawn(|| poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(30)));
                let mut taken = take(holder);
                taken[0].count = count;
                holder.answer_all(&taken, committed);
                assert!(matches!(posted.join().unwrap(), HandedOver::NotTaken));
            });
        }
    }

    #[test]
    fn nothing_is_handed_over_unless_another_process_holds_the_turn() {
        let Pair { poster, other, .. } = &pair();
        poster.board.counters().writer.store(0, SeqCst);
        assert!(matches!(
            poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(30)),
            HandedOver::NotTaken
        ));
        let me = poster.board.me();
        poster.board.counters().writer.store(me, SeqCst);
        assert!(matches!(
            poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(30)),
            HandedOver::NotTaken
        ));
        assert!(all_free(poster), "no slot was used");
        // Nor is anything but a set or a delete.
        poster.board.counters().writer.store(other.mark(), SeqCst);
        let clear =
            Write::Clear { cache: Target { id: CacheId(7), name: "c".into() }, prefix: String::new() };
        assert!(matches!(
            poster.hand_over(&clear, Instant::now() + Duration::from_secs(30)),
            HandedOver::NotTaken
        ));
    }

    #[test]
    fn a_posted_write_is_taken_back_when_the_turn_comes_free() {
        let Pair { poster, .. } = &pair();
        std::thread::scope(|scope| {
            let posted =
                scope.spawn(|| poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(30)));
            while !poster.slots().iter().any(|slot| kind(slot.state.load(SeqCst)) == POSTED) {
                std::thread::yield_now();
            }
            poster.board.counters().writer.store(0, SeqCst);
            assert!(matches!(posted.join().unwrap(), HandedOver::NotTaken));
        });
        assert!(all_free(poster));
    }

    #[test]
    fn a_write_posted_while_the_turn_is_held_by_a_process_that_died_is_taken_back_at_once() {
        let Pair { poster, db, .. } = &pair();
        poster.board.counters().writer.store(gone_mark(db), SeqCst);
        let started = Instant::now();
        assert!(matches!(
            poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(10)),
            HandedOver::NotTaken
        ));
        assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
        assert_eq!(poster.board.counters().writer.load(SeqCst), 0, "the dead holder's turn is freed");
        assert!(all_free(poster));
    }

    #[test]
    fn a_poster_whose_holder_died_is_told_so_and_frees_the_slot() {
        let Pair { poster, holder, db, .. } = &pair();
        std::thread::scope(|scope| {
            let posted =
                scope.spawn(|| poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(30)));
            let taken = take(holder);
            // As if the holder had been killed with the write taken.
            holder.taken_by(taken[0].slot, gone_mark(db));
            match posted.join().unwrap() {
                HandedOver::HolderGone { slot, seq: 1 } => {
                    assert_eq!(slot, taken[0].slot);
                    poster.release(slot, false);
                }
                _ => panic!("the holder's death went unnoticed"),
            }
        });
        assert!(all_free(poster));
    }

    #[test]
    fn a_poster_out_of_patience_abandons_its_slot_to_the_holder_who_frees_it() {
        let Pair { poster, holder, .. } = &pair();
        std::thread::scope(|scope| {
            let posted =
                scope.spawn(|| poster.hand_over(&set_write(), Instant::now() + Duration::from_millis(100)));
            let mut taken = take(holder);
            assert!(matches!(posted.join().unwrap(), HandedOver::TimedOut));
            taken[0].count = Some(0);
            holder.answer_all(&taken, Some((ChangeToken([1, 2]), 1)));
        });
        assert!(all_free(poster));
    }

    #[test]
    fn slots_left_by_posters_that_died_are_claimed_again() {
        let Pair { poster, holder, other, db, .. } = &pair();
        let gone = gone_mark(db);
        for (index, slot) in poster.slots().iter().enumerate() {
            let state = [FILLING, POSTED, ANSWERED][index % 3];
            slot.state.store(word(state, gone), SeqCst);
        }
        // Taken by a live holder: its holder's until answered.
        poster.slots()[0].state.store(word(TAKEN, other.mark()), SeqCst);
        std::thread::scope(|scope| {
            let posted =
                scope.spawn(|| poster.hand_over(&set_write(), Instant::now() + Duration::from_secs(30)));
            let mut taken = take(holder);
            // The dead posters' slots are not taken (freed, or claimed again by this poster).
            assert_eq!(taken.len(), 1);
            assert_ne!(taken[0].slot, 0, "a slot its holder has is not claimed");
            taken[0].count = Some(0);
            holder.answer_all(&taken, Some((ChangeToken([1, 2]), 1)));
            assert!(matches!(posted.join().unwrap(), HandedOver::Committed { .. }));
        });
    }

    #[test]
    fn the_turn_given_up_wakes_the_first_live_poster_not_a_dead_one_before_it() {
        let Pair { poster, other, db, .. } = &pair();
        let gone = gone_mark(db);
        let dead = poster.post_as(&set_write(), gone, 1, 1);
        let live = poster.post_as(&set_write(), other.mark(), 2, 1);
        assert!(dead < live, "the dead poster's slot is looked at first");
        let signals = || poster.slots().iter().map(|slot| slot.signal.load(SeqCst)).collect::<Vec<_>>();
        let before = signals();
        poster.wake_next_holder();
        let after = signals();
        assert_eq!(after[dead], before[dead], "nobody waits in the dead poster's slot");
        assert_eq!(after[live], before[live] + 1, "the live poster is woken to take the turn");
    }

    #[test]
    fn a_slot_taken_is_claimed_again_only_once_its_holder_and_its_poster_are_both_gone() {
        let Pair { poster, other, db, .. } = &pair();
        let gone = gone_mark(db);
        for slot in poster.slots() {
            // A live holder's, whose poster died: answered in time, then claimed.
            slot.state.store(word(TAKEN, other.mark()), SeqCst);
            slot.poster.store(gone, SeqCst);
        }
        // Its holder died, its poster lives: the poster frees it once it knows what became of
        // its write.
        poster.slots()[3].state.store(word(TAKEN, gone), SeqCst);
        poster.slots()[3].poster.store(other.mark(), SeqCst);
        // Both died: nobody else ever would.
        poster.slots()[5].state.store(word(TAKEN, gone), SeqCst);
        let claimed = poster.claim().map(|(index, _)| index);
        assert_eq!(claimed, Some(5));
        assert_eq!(poster.claim().map(|(index, _)| index), None, "no other slot is free");
    }

    #[test]
    fn a_write_reads_back_as_it_was_encoded_and_nothing_else_reads() {
        let delete = Write::Delete {
            cache: Target { id: CacheId(-3), name: "d".into() },
            keys: vec!["x".into(), "y".into()],
        };
        let mut expiring = set_write();
        if let Write::Set { expires_at, .. } = &mut expiring {
            *expires_at = Some(1_800_000_000_123);
        }
        for write in [set_write(), expiring, delete, put_write()] {
            let mut bytes = Vec::new();
            assert!(encode(&write, &mut bytes));
            assert_eq!(format!("{:?}", decode(&bytes).unwrap()), format!("{write:?}"));
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
            }
            bytes.push(0);
            assert!(decode(&bytes).is_none(), "a byte too many");
        }
        let mut bytes = Vec::new();
        assert!(!encode(&Write::DropCache { name: "c".into() }, &mut bytes));
        let take = Write::Take { queue: Target { id: QueueId(5), name: "jobs".into() }, max: 1 };
        assert!(!encode(&take, &mut bytes), "a take is never handed over");
        // Nor is a compare-and-swap, as an increment is not: it answers with what it found,
        // and its own process commits it.
        let swap = Write::CompareAndSwap {
            cache: Target { id: CacheId(7), name: "c".into() },
            key: "k".into(),
            expected: None,
            value: Some(Json::parse("1").unwrap()),
            quota: Quota::UNLIMITED,
        };
        assert!(!encode(&swap, &mut bytes), "a compare-and-swap is never handed over");
    }
}
