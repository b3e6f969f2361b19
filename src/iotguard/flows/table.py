"""The bidirectional flow table: CICFlowMeter's per-packet state machine as one jitted loop.

State lives in preallocated numpy arrays, one row (or column) per flow slot:

* ``S`` (float64, slots x ``NF``): every accumulator of a flow (timestamps in integer microseconds, counts,
  running statistics, bulk and active/idle state). Float64 holds integers exactly up to 2**53.
* ``K`` (uint64, slots x 4) and ``P`` (int32, slots x 2): the canonical key, endpoint A (hi, lo, port) and B
  with A <= B, so both directions of a conversation find the same slot. ``S[s, SRC_IS_A]`` says which
  endpoint started the flow.
* ``index``: an open-addressing hash table (linear probing, at most half full) from key hash to slot.
* ``occ``: the occupied slots as a compact list (row 0) and each slot's place in it (row 1), for flushing.
* ``wheel`` and ``W``: a timing wheel (``NB`` buckets of ``scan_interval``) holding each occupied slot once,
  at the time it is next due (flow timeout, close grace, early record by age, end of a dormant entry). The
  periodic scan visits only the slots in the buckets that came due, so its cost follows the number of flows
  that end, not the size of the table.

A flow ends as the CNS2022 release of CICFlowMeter (Engelen et al.) ends it: a packet arriving more than
``flow_timeout`` after the flow's first packet, a SYN after the connection was closed (both FINs and the
final ACK, or a RST), or an ICMP packet whose type and code both differ. Because the table must stay
bounded, three more rules (documented in docs/flows.md) emit flows without waiting for a packet: the wheel
emits flows older than ``flow_timeout`` (TCP ones stay as a *dormant* entry so that a later packet continues
the connection exactly as CICFlowMeter would), closed connections idle for ``close_grace``, and eviction of
the least recently seen flows when the table is full.

Finished flows (and optional early, partial records) are copied into output buffers; ``features.py`` turns
those rows into CICFlowMeter features.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from iotguard.flows.parse import (
    ELF_AT_START,
    ELF_IN_RESPONSE,
    HEAD_END,
    HEAD_OPEN,
    RESPONSE_HEAD,
    RFB_BANNER,
    RFB_FAILED,
)

# -- flow slot layout (columns of S) --------------------------------------------------------------------
TS_FIRST = 0
TS_LAST = 1
SRC_IS_A = 2
PROTO = 3
TCP_STATE = 4  # 0 open, 1 first FIN seen, 2 FINs from both sides, 3 ready for termination
CLOSE_KIND = 5  # end reason once ready for termination (KIND_FIN or KIND_RST)
EARLY_DONE = 6
CUM_TCP = 7  # connection time before this flow (CNS2022 "Total TCP Flow Time")
ICMP_TYPE = 8
ICMP_CODE = 9
FWD_N = 10
BWD_N = 11
FWD_LAST = 12
BWD_LAST = 13
ACT_START = 14
ACT_END = 15
# running statistics, 5 columns each: sum, min, max, mean, second central moment
ST_SUM, ST_MIN, ST_MAX, ST_MEAN, ST_M2 = 0, 1, 2, 3, 4
FWD_LEN = 16
BWD_LEN = 21
ALL_LEN = 26
FLOW_IAT = 31
FWD_IAT = 36
BWD_IAT = 41
ACTIVE = 46
IDLE = 51
ACTIVE_N = 56
IDLE_N = 57
# flag counts over both directions
CNT_FIN = 58
CNT_SYN = 59
CNT_RST = 60
CNT_PSH = 61
CNT_ACK = 62
CNT_URG = 63
CNT_CWR = 64
CNT_ECE = 65
FWD_PSH = 66
BWD_PSH = 67
FWD_URG = 68
BWD_URG = 69
FWD_RST = 70
BWD_RST = 71
FWD_FIN = 72
BWD_FIN = 73
FWD_HDR = 74
BWD_HDR = 75
INIT_WIN_F = 76
INIT_WIN_B = 77
ACT_DATA_F = 78
MIN_SEG_F = 79
# bulk state, 8 columns per direction
BK_START, BK_PKTH, BK_SIZEH, BK_LAST, BK_STATES, BK_PKTS, BK_BYTES, BK_DUR = 0, 1, 2, 3, 4, 5, 6, 7
FWD_BULK = 80
BWD_BULK = 88
SEQ = 96  # the meter's count of flows started before this one (makes flow ids unique within a run)
HTTP_IND = 97  # most injection indicators of one HTTP request of the flow (parse.http_indicators)
FIRST_FL = 98  # TCP flags of the connection's first packet seen, in the flow's orientation (-1: not TCP)
PROBES = 99  # packets of the flow's source of a shape no ordinary stack sends (_probe)
HEAD_AT = 100  # when the source's HTTP request head still unfinished began (0: none; parse.HEAD_OPEN)
EXE_N = 101  # Linux executables the flow's source received from its destination (parse._executable)
EXE_AT = 102  # where the destination's TCP stream is: 0 before its first payload, 1 within it, 2 a body next
RFB_AT = 103  # the destination's RFB handshake: 0 before its first payload, k > 0 k seen, -1 not RFB or done
RFB_LAST = 104  # the length of the destination's previous TCP payload (while RFB_AT > 0)
RFB_N = 105  # RFB authentications the destination (a VNC server) told the flow's source failed (_rfb_step)
NF = 106

RFB_SEGMENTS = 8
"""Server payloads of an RFB handshake looked through: the version banner, the security types (which some
servers write one byte a segment: 3 for the reference capture's two types), the 16-byte challenge, the result."""

# -- output record kinds (why a record was emitted) -----------------------------------------------------
KIND_PARTIAL = 0
KIND_TIMEOUT = 1
KIND_FIN = 2
KIND_RST = 3
KIND_ICMP = 4
KIND_EVICTED = 5
KIND_END = 6
KIND_NAMES = ("active", "timeout", "fin", "rst", "icmp_change", "evicted", "end")

# columns of the integer output buffer
O_SPORT, O_DPORT, O_PROTO, O_KIND, O_FLOW_ID = 0, 1, 2, 3, 4
NO = 5

# -- config vector --------------------------------------------------------------------------------------
C_FLOW_TIMEOUT = 0
C_ACTIVITY = 1
C_CLOSE_GRACE = 2  # < 0: closed connections wait for the flow timeout
C_EARLY_PKTS = 3  # 0: no packet-count early records
C_EARLY_US = 4  # < 0: no age early records
C_SCAN_US = 5  # the wheel's granularity
C_DORMANT_US = 6  # < 0: dormant entries stay until the table needs the slot
C_MAX_SLOTS = 7
C_EARLY_PKTS2 = 8  # 0: no second packet-count early record
NC = 9

# -- meta vector ----------------------------------------------------------------------------------------
M_TOP = 0  # free slots on the stack
M_NOW = 1
M_WHEEL_T = 2  # the wheel has been run up to this bucket time (now // scan_interval)
M_WHEEL_RUN = 3  # 1: a wheel run is due or was interrupted
M_NOUT = 4
M_ACTIVE = 5
M_DORMANT = 6
M_RNG = 7
M_CURSOR = 8
M_EVICTED = 9
M_STARTED = 10  # 0 until the first packet (or expire) set the clock
M_FLUSH = 11  # 1 while a flush runs
M_SEQ = 12  # flows started so far
M_NOCC = 13  # occupied (live or dormant) slots, listed in occ[0, :M_NOCC]
NM = 14

# -- timing wheel ---------------------------------------------------------------------------------------
NB = 4096  # buckets; with a 1 s granularity one turn is 68 minutes (later dues wait in their bucket)
W_NEXT, W_PREV, W_DUE, W_IN = 0, 1, 2, 3  # rows of W
NW = 4

# -- return status of process() -------------------------------------------------------------------------
DONE = 0
OUT_FULL = 1
NEED_GROW = 2

FREE, LIVE, DORMANT = 0, 1, 2

F_FIN, F_SYN, F_RST, F_PSH, F_ACK, F_URG, F_ECE, F_CWR = 1, 2, 4, 8, 16, 32, 64, 128

_U = np.uint64
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S16 = np.uint64(16)
_S8 = np.uint64(8)
_ID_MASK = np.uint64(0x7FFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _mix(x):
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(cache=True, inline="always")
def _hash(ahi, alo, bhi, blo, ap, bp, pr):
    h = _mix(_GOLD ^ _U(pr))
    h = _mix(h ^ ahi)
    h = _mix(h ^ alo)
    h = _mix(h ^ bhi)
    h = _mix(h ^ blo)
    return _mix(h ^ ((_U(ap) << _S16) | _U(bp)))


@njit(cache=True, inline="always")
def _stat(S, s, base, n, x):
    """Add x to a running statistic that now holds n values (Apache Commons Math's recurrences)."""
    if n == 1:
        S[s, base + ST_SUM] = x
        S[s, base + ST_MIN] = x
        S[s, base + ST_MAX] = x
        S[s, base + ST_MEAN] = x
        S[s, base + ST_M2] = 0.0
    else:
        S[s, base + ST_SUM] += x
        if x < S[s, base + ST_MIN]:
            S[s, base + ST_MIN] = x
        if x > S[s, base + ST_MAX]:
            S[s, base + ST_MAX] = x
        dev = x - S[s, base + ST_MEAN]
        ndev = dev / n
        S[s, base + ST_MEAN] += ndev
        S[s, base + ST_M2] += (n - 1.0) * dev * ndev


@njit(cache=True, inline="always")
def _bulk(S, s, mine, other, ts, size):
    """CICFlowMeter's bulk detector for one direction (``mine``), broken by a bulk packet of ``other``."""
    if S[s, other + BK_LAST] > S[s, mine + BK_START]:
        S[s, mine + BK_START] = 0.0
    if size <= 0:
        return
    if S[s, mine + BK_START] == 0.0:
        S[s, mine + BK_START] = ts
        S[s, mine + BK_PKTH] = 1.0
        S[s, mine + BK_SIZEH] = size
        S[s, mine + BK_LAST] = ts
    elif ts - S[s, mine + BK_LAST] > 1000000.0:
        S[s, mine + BK_START] = ts
        S[s, mine + BK_LAST] = ts
        S[s, mine + BK_PKTH] = 1.0
        S[s, mine + BK_SIZEH] = size
    else:
        S[s, mine + BK_PKTH] += 1.0
        S[s, mine + BK_SIZEH] += size
        if S[s, mine + BK_PKTH] == 4.0:
            S[s, mine + BK_STATES] += 1.0
            S[s, mine + BK_PKTS] += S[s, mine + BK_PKTH]
            S[s, mine + BK_BYTES] += S[s, mine + BK_SIZEH]
            S[s, mine + BK_DUR] += ts - S[s, mine + BK_START]
        elif S[s, mine + BK_PKTH] > 4.0:
            S[s, mine + BK_PKTS] += 1.0
            S[s, mine + BK_BYTES] += size
            S[s, mine + BK_DUR] += ts - S[s, mine + BK_LAST]
        S[s, mine + BK_LAST] = ts


@njit(cache=True, inline="always")
def _flags(S, s, fl):
    if fl:
        if fl & F_FIN:
            S[s, CNT_FIN] += 1.0
        if fl & F_SYN:
            S[s, CNT_SYN] += 1.0
        if fl & F_RST:
            S[s, CNT_RST] += 1.0
        if fl & F_PSH:
            S[s, CNT_PSH] += 1.0
        if fl & F_ACK:
            S[s, CNT_ACK] += 1.0
        if fl & F_URG:
            S[s, CNT_URG] += 1.0
        if fl & F_CWR:
            S[s, CNT_CWR] += 1.0
        if fl & F_ECE:
            S[s, CNT_ECE] += 1.0


@njit(cache=True, inline="always")
def _unlink(s, wheel, W, cfg):
    b = (W[W_DUE, s] // np.int64(cfg[C_SCAN_US])) & (NB - 1)
    prev = W[W_PREV, s]
    nxt = W[W_NEXT, s]
    if prev >= 0:
        W[W_NEXT, prev] = nxt
    else:
        wheel[b] = nxt
    if nxt >= 0:
        W[W_PREV, nxt] = prev
    W[W_IN, s] = 0


@njit(cache=True)
def _schedule(s, due, wheel, W, cfg):
    """Make slot s due at ``due`` (microseconds) unless it is already due earlier."""
    d = np.int64(due)
    if W[W_IN, s]:
        if d >= W[W_DUE, s]:
            return
        _unlink(s, wheel, W, cfg)
    b = (d // np.int64(cfg[C_SCAN_US])) & (NB - 1)
    head = wheel[b]
    W[W_NEXT, s] = head
    W[W_PREV, s] = -1
    if head >= 0:
        W[W_PREV, head] = s
    wheel[b] = s
    W[W_DUE, s] = d
    W[W_IN, s] = 1


@njit(cache=True, inline="always")
def _probe(pr, fl, ityp, icod):
    """A packet of a shape no ordinary IP stack sends, only probing tools (OS fingerprinting, stealth scans).

    * ICMPv4 echo (8) or timestamp (13) request with a nonzero code: RFC 792 defines only code 0. nmap's OS
      detection sends an echo request with code 9 (its IE probe), Xprobe2 ones with other codes; Snort's
      community rule 365 "ICMP PING undefined code".
    * ICMPv4 information (15) or address mask (17) request: deprecated (RFC 6918) and answered only by old
      stacks, which is what fingerprinting tools (Xprobe2) ask them for; Snort rules 417 and 388.
    * TCP without ACK that is neither an opening SYN nor a RST (a bare FIN, no flags at all, FIN+PSH+URG):
      after the SYN every segment carries ACK (RFC 9293, 3.10.7), so these are the FIN, NULL and XMAS scans'
      probes and nmap's T2/T7 OS-detection probes (Snort "SCAN FIN", "SCAN NULL", "SCAN nmap XMAS").
    * TCP with SYN and FIN, or SYN and RST: opening and closing at once (nmap's T3 probe; Snort "SCAN SYN FIN").
    """
    if pr == 1:
        return ((ityp == 8.0 or ityp == 13.0) and icod != 0.0) or ityp == 15.0 or ityp == 17.0
    if pr == 6:
        if fl & F_SYN:
            return (fl & F_FIN) != 0 or (fl & F_RST) != 0
        return (fl & F_ACK) == 0 and (fl & F_RST) == 0
    return False


@njit(cache=True, inline="always")
def _rfb_step(S, s, mark, pay):
    """One TCP payload of the flow's destination: follow its RFB server handshake (parse._rfb marks the shapes).

    The flow is RFB when its source opened the connection (a SYN without ACK: the source is the client) and the
    destination's first payload is a ProtocolVersion banner. Then the server payload right after its first
    16-byte one (the VNC-authentication challenge, security type 2, the one password scanners guess) is the
    SecurityResult: a failed one counts, and either way the look ends there (one result per connection), as it
    does at a payload of 24 bytes or more (a ServerInit: no password asked) or after :data:`RFB_SEGMENTS`.
    This keeps out the same 4 bytes elsewhere: RFB 3.3's security type "None" (``00 00 00 01``, no challenge
    before it) and the FramebufferUpdate header of one rectangle (only after the result or a ServerInit)."""
    at = S[s, RFB_AT]
    if at == 0.0:
        fl = np.int64(S[s, FIRST_FL])  # (-1 for other protocols: not a SYN below)
        opened = fl >= 0 and (fl & F_SYN) != 0 and (fl & F_ACK) == 0
        at = 1.0 if mark == RFB_BANNER and opened and S[s, CUM_TCP] == 0.0 else -1.0
    elif at > 0.0:
        if at >= RFB_SEGMENTS:
            at = -1.0
        elif S[s, RFB_LAST] == 16.0:  # the challenge's answer: the result, whatever it says, ends the look
            if mark == RFB_FAILED:
                S[s, RFB_N] += 1.0
            at = -1.0
        elif pay >= 24.0:  # a ServerInit (24 bytes or more): a session without a password has started
            at = -1.0
        else:
            at += 1.0
    S[s, RFB_AT] = at
    S[s, RFB_LAST] = pay


@njit(cache=True)
def _first(S, s, meta, cfg, wheel, W, src_is_a, fwd, cum, ts, proto, pay, hdr, fl, win, ityp, icod):
    """Start a flow in slot s with its first packet (CICFlowMeter ``BasicFlow.firstPacket``)."""
    S[s, :] = 0.0
    S[s, SEQ] = meta[M_SEQ]
    meta[M_SEQ] += 1
    due = ts + cfg[C_FLOW_TIMEOUT] + 1.0
    if cfg[C_EARLY_US] >= 0:
        due = min(due, ts + cfg[C_EARLY_US])
    _schedule(s, due, wheel, W, cfg)
    S[s, SRC_IS_A] = 1.0 if src_is_a else 0.0
    S[s, PROTO] = proto
    S[s, CUM_TCP] = cum
    S[s, ICMP_TYPE] = ityp
    S[s, ICMP_CODE] = icod
    S[s, FIRST_FL] = fl if proto == 6 else -1.0
    if fwd:
        _bulk(S, s, FWD_BULK, BWD_BULK, ts, pay)
    else:
        _bulk(S, s, BWD_BULK, FWD_BULK, ts, pay)
    _flags(S, s, fl)
    S[s, TS_FIRST] = ts
    S[s, TS_LAST] = ts
    S[s, ACT_START] = ts
    S[s, ACT_END] = ts
    _stat(S, s, ALL_LEN, 1, pay)
    if fwd:
        S[s, MIN_SEG_F] = hdr
        S[s, INIT_WIN_F] = win
        _stat(S, s, FWD_LEN, 1, pay)
        S[s, FWD_HDR] = hdr
        S[s, FWD_LAST] = ts
        S[s, FWD_N] = 1.0
        if fl & F_PSH:
            S[s, FWD_PSH] += 1.0
        if fl & F_URG:
            S[s, FWD_URG] += 1.0
    else:
        S[s, INIT_WIN_B] = win
        _stat(S, s, BWD_LEN, 1, pay)
        S[s, BWD_HDR] = hdr
        S[s, BWD_LAST] = ts
        S[s, BWD_N] = 1.0
        if fl & F_PSH:
            S[s, BWD_PSH] += 1.0
        if fl & F_URG:
            S[s, BWD_URG] += 1.0


@njit(cache=True)
def _add(S, s, fwd, ts, pay, hdr, fl, win, activity):
    """Add a packet to the flow in slot s (active/idle update, then ``BasicFlow.addPacket``)."""
    # updateActiveIdleTime
    if ts - S[s, ACT_END] > activity:
        if S[s, ACT_END] - S[s, ACT_START] > 0:
            S[s, ACTIVE_N] += 1.0
            _stat(S, s, ACTIVE, S[s, ACTIVE_N], S[s, ACT_END] - S[s, ACT_START])
        S[s, IDLE_N] += 1.0
        _stat(S, s, IDLE, S[s, IDLE_N], ts - S[s, ACT_END])
        S[s, ACT_START] = ts
        S[s, ACT_END] = ts
    else:
        S[s, ACT_END] = ts
    if fwd:
        _bulk(S, s, FWD_BULK, BWD_BULK, ts, pay)
    else:
        _bulk(S, s, BWD_BULK, FWD_BULK, ts, pay)
    _flags(S, s, fl)
    _stat(S, s, ALL_LEN, S[s, FWD_N] + S[s, BWD_N] + 1.0, pay)
    if fwd:
        if pay >= 1:
            S[s, ACT_DATA_F] += 1.0
        S[s, FWD_N] += 1.0
        _stat(S, s, FWD_LEN, S[s, FWD_N], pay)
        S[s, FWD_HDR] += hdr
        if S[s, FWD_N] > 1.0:
            _stat(S, s, FWD_IAT, S[s, FWD_N] - 1.0, ts - S[s, FWD_LAST])
        S[s, FWD_LAST] = ts
        if hdr < S[s, MIN_SEG_F]:
            S[s, MIN_SEG_F] = hdr
        if fl & F_PSH:
            S[s, FWD_PSH] += 1.0
        if fl & F_URG:
            S[s, FWD_URG] += 1.0
        if fl & F_FIN:
            S[s, FWD_FIN] += 1.0
        if fl & F_RST:
            S[s, FWD_RST] += 1.0
    else:
        S[s, BWD_N] += 1.0
        _stat(S, s, BWD_LEN, S[s, BWD_N], pay)
        S[s, INIT_WIN_B] = win
        S[s, BWD_HDR] += hdr
        if S[s, BWD_N] > 1.0:
            _stat(S, s, BWD_IAT, S[s, BWD_N] - 1.0, ts - S[s, BWD_LAST])
        S[s, BWD_LAST] = ts
        if fl & F_PSH:
            S[s, BWD_PSH] += 1.0
        if fl & F_URG:
            S[s, BWD_URG] += 1.0
        if fl & F_FIN:
            S[s, BWD_FIN] += 1.0
        if fl & F_RST:
            S[s, BWD_RST] += 1.0
    n_all = S[s, FWD_N] + S[s, BWD_N]
    _stat(S, s, FLOW_IAT, n_all - 1.0, ts - S[s, TS_LAST])
    S[s, TS_LAST] = ts


@njit(cache=True)
def _emit(S, K, P, s, kind, out_f, out_k, out_i, meta):
    k = meta[M_NOUT]
    out_f[k, :] = S[s, :]
    if S[s, SRC_IS_A] != 0.0:
        shi, slo, dhi, dlo = K[s, 0], K[s, 1], K[s, 2], K[s, 3]
        sp, dp = P[s, 0], P[s, 1]
    else:
        shi, slo, dhi, dlo = K[s, 2], K[s, 3], K[s, 0], K[s, 1]
        sp, dp = P[s, 1], P[s, 0]
    out_k[k, 0] = shi
    out_k[k, 1] = slo
    out_k[k, 2] = dhi
    out_k[k, 3] = dlo
    out_i[k, O_SPORT] = sp
    out_i[k, O_DPORT] = dp
    pr = np.int64(S[s, PROTO])
    out_i[k, O_PROTO] = pr
    out_i[k, O_KIND] = kind
    h = _hash(shi, slo, dhi, dlo, sp, dp, pr)
    h = _mix(h ^ _U(np.int64(S[s, TS_FIRST])))
    h = _mix(h ^ _U(np.int64(S[s, SEQ])))
    out_i[k, O_FLOW_ID] = np.int64(h & _ID_MASK)
    meta[M_NOUT] = k + 1


@njit(cache=True)
def _lookup(index, hashes, K, P, S, used, h, ahi, alo, bhi, blo, ap, bp, pr):
    """(slot, index position) of the key, or (-1, first empty position)."""
    mask = index.shape[0] - 1
    pos = np.int64(h & _U(mask))
    while True:
        s = index[pos]
        if s < 0:
            return -1, pos
        if (
            hashes[s] == h
            and K[s, 1] == alo
            and K[s, 3] == blo
            and K[s, 0] == ahi
            and K[s, 2] == bhi
            and P[s, 0] == ap
            and P[s, 1] == bp
            and S[s, PROTO] == pr
        ):
            return s, pos
        pos = (pos + 1) & mask


@njit(cache=True, inline="always")
def _occupy(s, occ, meta):
    n = meta[M_NOCC]
    occ[0, n] = s
    occ[1, s] = n
    meta[M_NOCC] = n + 1


@njit(cache=True)
def _free(s, index, hashes, used, free, occ, wheel, W, meta, cfg):
    """Release slot s: out of the index (backward-shift deletion), the occupied list (the last listed slot
    takes its place) and the wheel, and onto the free stack."""
    mask = index.shape[0] - 1
    i = np.int64(hashes[s] & _U(mask))
    while index[i] != s:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        t = index[j]
        if t < 0:
            break
        home = np.int64(hashes[t] & _U(mask))
        # keep t where it is if its home lies cyclically in (i, j]
        if i <= j:
            if i < home <= j:
                continue
        elif home > i or home <= j:
            continue
        index[i] = t
        i = j
    index[i] = -1
    k = occ[1, s]
    last = occ[0, meta[M_NOCC] - 1]
    occ[0, k] = last
    occ[1, last] = k
    occ[1, s] = -1
    meta[M_NOCC] -= 1
    if W[W_IN, s]:
        _unlink(s, wheel, W, cfg)
    if used[s] == LIVE:
        meta[M_ACTIVE] -= 1
    elif used[s] == DORMANT:
        meta[M_DORMANT] -= 1
    used[s] = FREE
    free[meta[M_TOP]] = s
    meta[M_TOP] += 1


@njit(cache=True)
def _visit(s, now, S, K, P, used, index, hashes, free, occ, wheel, W, meta, cfg, out_f, out_k, out_i):
    """Do what is due for slot s at ``now``, then put it back on the wheel at its next due time."""
    flow_to = cfg[C_FLOW_TIMEOUT]
    grace = cfg[C_CLOSE_GRACE]
    early_us = cfg[C_EARLY_US]
    memory = cfg[C_DORMANT_US]
    if used[s] == LIVE:
        age = now - S[s, TS_FIRST]
        if age > flow_to:
            _emit(S, K, P, s, KIND_TIMEOUT, out_f, out_k, out_i, meta)
            if S[s, PROTO] == 6.0:
                # Remember the connection so that a later packet continues it as CICFlowMeter does.
                S[s, CUM_TCP] += S[s, TS_LAST] - S[s, TS_FIRST]
                used[s] = DORMANT
                meta[M_ACTIVE] -= 1
                meta[M_DORMANT] += 1
                if memory >= 0:
                    _schedule(s, S[s, TS_LAST] + memory + 1.0, wheel, W, cfg)
            else:
                _free(s, index, hashes, used, free, occ, wheel, W, meta, cfg)
            return
        if S[s, TCP_STATE] == 3.0 and grace >= 0 and now - S[s, TS_LAST] > grace:
            _emit(S, K, P, s, np.int64(S[s, CLOSE_KIND]), out_f, out_k, out_i, meta)
            _free(s, index, hashes, used, free, occ, wheel, W, meta, cfg)
            return
        if early_us >= 0 and S[s, EARLY_DONE] == 0.0 and age >= early_us:
            _emit(S, K, P, s, KIND_PARTIAL, out_f, out_k, out_i, meta)
            S[s, EARLY_DONE] = 1.0
        due = S[s, TS_FIRST] + flow_to + 1.0
        if S[s, TCP_STATE] == 3.0 and grace >= 0:
            due = min(due, S[s, TS_LAST] + grace + 1.0)
        if early_us >= 0 and S[s, EARLY_DONE] == 0.0:
            due = min(due, S[s, TS_FIRST] + early_us)
        _schedule(s, due, wheel, W, cfg)
    elif used[s] == DORMANT and memory >= 0:
        if now - S[s, TS_LAST] > memory:
            _free(s, index, hashes, used, free, occ, wheel, W, meta, cfg)
        else:
            _schedule(s, S[s, TS_LAST] + memory + 1.0, wheel, W, cfg)


@njit(cache=True)
def _run_wheel(S, K, P, used, index, hashes, free, occ, wheel, W, meta, cfg, out_f, out_k, out_i):
    """Visit every slot due by meta[M_NOW]; False if the output filled up (call again to resume)."""
    gran = np.int64(cfg[C_SCAN_US])
    now = meta[M_NOW]
    ocap = out_f.shape[0]
    end = now // gran
    cur = meta[M_WHEEL_T]
    if end - cur >= NB:
        cur = end - NB + 1  # one full turn covers every bucket
    while cur <= end:
        s = wheel[cur & (NB - 1)]
        while s >= 0:
            nxt = W[W_NEXT, s]
            if W[W_DUE, s] <= now:
                if meta[M_NOUT] + 2 > ocap:
                    meta[M_WHEEL_T] = cur
                    return False
                _unlink(s, wheel, W, cfg)
                _visit(
                    s,
                    np.float64(now),
                    S,
                    K,
                    P,
                    used,
                    index,
                    hashes,
                    free,
                    occ,
                    wheel,
                    W,
                    meta,
                    cfg,
                    out_f,
                    out_k,
                    out_i,
                )
            s = nxt
        cur += 1
    meta[M_WHEEL_T] = end
    meta[M_WHEEL_RUN] = 0
    return True


@njit(cache=True)
def _flush(S, K, P, used, index, hashes, free, occ, wheel, W, meta, cfg, out_f, out_k, out_i):
    """Emit every live flow and free every slot; False if the output filled up (call again to resume)."""
    ocap = out_f.shape[0]
    while meta[M_NOCC] > 0:
        if meta[M_NOUT] + 2 > ocap:
            return False
        s = occ[0, meta[M_NOCC] - 1]
        if used[s] == LIVE:
            kind = np.int64(S[s, CLOSE_KIND]) if S[s, TCP_STATE] == 3.0 else KIND_END
            _emit(S, K, P, s, kind, out_f, out_k, out_i, meta)
        _free(s, index, hashes, used, free, occ, wheel, W, meta, cfg)
    meta[M_FLUSH] = 0
    return True


@njit(cache=True)
def _next_rand(meta):
    x = _U(meta[M_RNG])
    x ^= x << np.uint64(13)
    x ^= x >> np.uint64(7)
    x ^= x << np.uint64(17)
    meta[M_RNG] = np.int64(x & _ID_MASK) | 1
    return x


@njit(cache=True)
def _evict(S, K, P, used, index, hashes, free, occ, wheel, W, meta, cfg, out_f, out_k, out_i, budget):
    """Free up to ``budget`` slots, least recently seen first (approximately); runs when every slot is used.

    A threshold is the 25th percentile of the last-seen time of 64 random slots; a sweep from a rotating
    cursor then frees dormant entries and emits (kind ``evicted``) live flows last seen at or before it.
    """
    cap = S.shape[0]
    samples = np.empty(64, np.float64)
    for k in range(64):
        samples[k] = S[np.int64(_next_rand(meta) % _U(cap)), TS_LAST]
    samples.sort()
    threshold = samples[15]
    freed = 0
    pos = meta[M_CURSOR]
    for _ in range(cap):
        if freed >= budget:
            break
        pos = pos + 1 if pos + 1 < cap else 0
        u = used[pos]
        if u == DORMANT:
            _free(pos, index, hashes, used, free, occ, wheel, W, meta, cfg)
            freed += 1
        elif u == LIVE and S[pos, TS_LAST] <= threshold:
            _emit(S, K, P, pos, KIND_EVICTED, out_f, out_k, out_i, meta)
            _free(pos, index, hashes, used, free, occ, wheel, W, meta, cfg)
            meta[M_EVICTED] += 1
            freed += 1
    meta[M_CURSOR] = pos
    return freed


@njit(cache=True)
def process(
    start,
    ts_us,
    src_hi,
    src_lo,
    dst_hi,
    dst_lo,
    sport,
    dport,
    proto,
    payload,
    hdr,
    flags,
    window,
    icmp_type,
    icmp_code,
    reason,
    http,
    head,
    exe,
    rfb,
    S,
    K,
    P,
    used,
    index,
    hashes,
    free,
    occ,
    wheel,
    W,
    meta,
    cfg,
    out_f,
    out_k,
    out_i,
):
    """Run packets ``start..`` through the table; returns (next packet, status).

    Stops early with OUT_FULL (drain the output buffers, call again from the returned packet) or NEED_GROW
    (enlarge the table, call again). A pending flush or wheel run (periodic or ``expire``) goes first.
    """
    n = ts_us.shape[0]
    ocap = out_f.shape[0]
    flow_to = cfg[C_FLOW_TIMEOUT]
    activity = cfg[C_ACTIVITY]
    early_pk = cfg[C_EARLY_PKTS]
    early_pk2 = cfg[C_EARLY_PKTS2]
    early_us = cfg[C_EARLY_US]
    gran = np.int64(cfg[C_SCAN_US])
    i = start
    while True:
        if meta[M_FLUSH] and not _flush(
            S, K, P, used, index, hashes, free, occ, wheel, W, meta, cfg, out_f, out_k, out_i
        ):
            return i, OUT_FULL
        if meta[M_WHEEL_RUN] and not _run_wheel(
            S, K, P, used, index, hashes, free, occ, wheel, W, meta, cfg, out_f, out_k, out_i
        ):
            return i, OUT_FULL
        if i >= n:
            return i, DONE
        if meta[M_NOUT] + 2 > ocap:
            return i, OUT_FULL
        if reason[i] != 0:
            i += 1
            continue
        ts = np.float64(ts_us[i])
        if meta[M_STARTED] == 0:
            meta[M_STARTED] = 1
            meta[M_NOW] = ts_us[i]
            meta[M_WHEEL_T] = ts_us[i] // gran
        elif ts_us[i] > meta[M_NOW]:
            meta[M_NOW] = ts_us[i]
        shi, slo, dhi, dlo = src_hi[i], src_lo[i], dst_hi[i], dst_lo[i]
        sp, dp, pr = sport[i], dport[i], proto[i]
        from_a = shi < dhi or (shi == dhi and (slo < dlo or (slo == dlo and sp <= dp)))
        if from_a:
            h = _hash(shi, slo, dhi, dlo, sp, dp, pr)
            s, pos = _lookup(index, hashes, K, P, S, used, h, shi, slo, dhi, dlo, sp, dp, pr)
        else:
            h = _hash(dhi, dlo, shi, slo, dp, sp, pr)
            s, pos = _lookup(index, hashes, K, P, S, used, h, dhi, dlo, shi, slo, dp, sp, pr)
        fl = flags[i]
        pay = np.float64(payload[i])
        hd = np.float64(hdr[i])
        win = np.float64(window[i])
        ityp = np.float64(icmp_type[i])
        icod = np.float64(icmp_code[i])
        fpr = np.float64(pr)
        if s < 0:
            if meta[M_TOP] == 0:
                if S.shape[0] < cfg[C_MAX_SLOTS]:
                    return i, NEED_GROW
                budget = min(S.shape[0] // 64 + 1, ocap - meta[M_NOUT] - 2)
                if budget <= 0:
                    return i, OUT_FULL
                _evict(
                    S, K, P, used, index, hashes, free, occ, wheel, W, meta, cfg, out_f, out_k, out_i, budget
                )
                if meta[M_TOP] == 0:
                    return i, OUT_FULL
                if from_a:
                    s, pos = _lookup(index, hashes, K, P, S, used, h, shi, slo, dhi, dlo, sp, dp, pr)
                else:
                    s, pos = _lookup(index, hashes, K, P, S, used, h, dhi, dlo, shi, slo, dp, sp, pr)
            meta[M_TOP] -= 1
            s = free[meta[M_TOP]]
            index[pos] = s
            hashes[s] = h
            if from_a:
                K[s, 0], K[s, 1], K[s, 2], K[s, 3] = shi, slo, dhi, dlo
                P[s, 0], P[s, 1] = sp, dp
            else:
                K[s, 0], K[s, 1], K[s, 2], K[s, 3] = dhi, dlo, shi, slo
                P[s, 0], P[s, 1] = dp, sp
            used[s] = LIVE
            meta[M_ACTIVE] += 1
            _occupy(s, occ, meta)
            _first(S, s, meta, cfg, wheel, W, from_a, True, 0.0, ts, fpr, pay, hd, fl, win, ityp, icod)
        elif used[s] == DORMANT:
            # The connection's previous flow ended by the flow timeout: split exactly as on arrival.
            used[s] = LIVE
            meta[M_DORMANT] -= 1
            meta[M_ACTIVE] += 1
            if S[s, TCP_STATE] == 3.0 and (fl & F_SYN) and not (fl & F_ACK):
                _first(S, s, meta, cfg, wheel, W, from_a, True, 0.0, ts, fpr, pay, hd, fl, win, ityp, icod)
            else:
                old_a = S[s, SRC_IS_A] != 0.0
                cum = S[s, CUM_TCP] + (ts - S[s, TS_LAST])
                opened = S[
                    s, FIRST_FL
                ]  # a continuation: the connection was opened by the earlier flow's packet
                _first(
                    S,
                    s,
                    meta,
                    cfg,
                    wheel,
                    W,
                    old_a,
                    from_a == old_a,
                    cum,
                    ts,
                    fpr,
                    pay,
                    hd,
                    fl,
                    win,
                    ityp,
                    icod,
                )
                S[s, FIRST_FL] = opened
        else:
            src_a = S[s, SRC_IS_A] != 0.0
            fwd = from_a == src_a
            state = S[s, TCP_STATE]
            timed_out = ts - S[s, TS_FIRST] > flow_to
            if timed_out or (state == 3.0 and (fl & F_SYN)):
                kind = KIND_TIMEOUT if timed_out else np.int64(S[s, CLOSE_KIND])
                _emit(S, K, P, s, kind, out_f, out_k, out_i, meta)
                if pr == 6:
                    if state == 3.0 and (fl & F_SYN) and not (fl & F_ACK):
                        _first(
                            S,
                            s,
                            meta,
                            cfg,
                            wheel,
                            W,
                            from_a,
                            True,
                            0.0,
                            ts,
                            fpr,
                            pay,
                            hd,
                            fl,
                            win,
                            ityp,
                            icod,
                        )
                    else:
                        cum = S[s, CUM_TCP] + (S[s, TS_LAST] - S[s, TS_FIRST]) + (ts - S[s, TS_LAST])
                        opened = S[s, FIRST_FL]
                        _first(
                            S, s, meta, cfg, wheel, W, src_a, fwd, cum, ts, fpr, pay, hd, fl, win, ityp, icod
                        )
                        S[s, FIRST_FL] = opened
                else:
                    _first(
                        S, s, meta, cfg, wheel, W, from_a, True, 0.0, ts, fpr, pay, hd, fl, win, ityp, icod
                    )
            elif fl & F_FIN:
                _add(S, s, fwd, ts, pay, hd, fl, win, activity)
                if state == 0.0:
                    S[s, TCP_STATE] = 1.0
                elif state == 1.0 and S[s, FWD_FIN] > 0 and S[s, BWD_FIN] > 0:
                    S[s, TCP_STATE] = 2.0
            elif fl & F_RST:
                _add(S, s, fwd, ts, pay, hd, fl, win, activity)
                S[s, TCP_STATE] = 3.0
                S[s, CLOSE_KIND] = KIND_RST
                if cfg[C_CLOSE_GRACE] >= 0:
                    _schedule(s, ts + cfg[C_CLOSE_GRACE] + 1.0, wheel, W, cfg)
            elif fl & F_ACK:
                _add(S, s, fwd, ts, pay, hd, fl, win, activity)
                if state == 2.0:
                    S[s, TCP_STATE] = 3.0
                    S[s, CLOSE_KIND] = KIND_FIN
                    if cfg[C_CLOSE_GRACE] >= 0:
                        _schedule(s, ts + cfg[C_CLOSE_GRACE] + 1.0, wheel, W, cfg)
            elif (pr == 1 or pr == 58) and icod != S[s, ICMP_CODE] and ityp != S[s, ICMP_TYPE]:
                _emit(S, K, P, s, KIND_ICMP, out_f, out_k, out_i, meta)
                _first(S, s, meta, cfg, wheel, W, from_a, True, 0.0, ts, fpr, pay, hd, fl, win, ityp, icod)
            else:
                _add(S, s, fwd, ts, pay, hd, fl, win, activity)
        if http[i] > S[s, HTTP_IND]:
            S[s, HTTP_IND] = http[i]
        fwd_now = from_a == (S[s, SRC_IS_A] != 0.0)
        if _probe(pr, fl, ityp, icod) and fwd_now:
            S[s, PROBES] += 1.0
        if pr == 6:
            # a request head the client left unfinished: open until the client ends it or the server answers
            if not fwd_now:
                if pay > 0:
                    S[s, HEAD_AT] = 0.0
            elif head[i] == HEAD_OPEN:
                if S[s, HEAD_AT] == 0.0:
                    S[s, HEAD_AT] = ts
            elif head[i] == HEAD_END:
                S[s, HEAD_AT] = 0.0
            if not fwd_now and pay > 0:
                # an executable the source receives: at the start of the destination's stream (not of a
                # continuation after a flow timeout: that starts mid-stream) or of an HTTP response body
                ex = exe[i]
                at = S[s, EXE_AT]
                if ex == ELF_IN_RESPONSE or (
                    ex == ELF_AT_START and (at == 2.0 or (at == 0.0 and S[s, CUM_TCP] == 0.0))
                ):
                    S[s, EXE_N] += 1.0
                S[s, EXE_AT] = 2.0 if ex == RESPONSE_HEAD else 1.0
                if S[s, RFB_AT] >= 0.0:
                    _rfb_step(S, s, rfb[i], pay)
        if S[s, EARLY_DONE] == 0.0:
            n_pk = S[s, FWD_N] + S[s, BWD_N]
            if (early_pk > 0 and n_pk >= early_pk) or (early_us >= 0 and ts - S[s, TS_FIRST] >= early_us):
                _emit(S, K, P, s, KIND_PARTIAL, out_f, out_k, out_i, meta)
                S[s, EARLY_DONE] = 1.0
        elif early_pk2 > 0 and S[s, EARLY_DONE] == 1.0 and S[s, FWD_N] + S[s, BWD_N] >= early_pk2:
            # a second look at a flow that kept going: its rate over many packets, not just the handshake's
            _emit(S, K, P, s, KIND_PARTIAL, out_f, out_k, out_i, meta)
            S[s, EARLY_DONE] = 2.0
        i += 1
        if meta[M_NOW] // gran > meta[M_WHEEL_T]:
            meta[M_WHEEL_RUN] = 1


@njit(cache=True)
def rebuild_index(index, hashes, used):
    """Insert every used slot into a fresh (all -1) index."""
    mask = index.shape[0] - 1
    for s in range(used.shape[0]):
        if used[s] != FREE:
            pos = np.int64(hashes[s] & _U(mask))
            while index[pos] >= 0:
                pos = (pos + 1) & mask
            index[pos] = s
