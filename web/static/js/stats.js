// Connection indicators from getStats: bitrate, packet loss and round-trip time, per classroom we
// receive (summed over its slots) and for our own uplink.

const GOOD = { loss: 0.02, rtt: 250 };
const FAIR = { loss: 0.08, rtt: 600 };

export function quality({ kbps, loss, rtt }) {
  if (!kbps) return "none";
  if (loss > FAIR.loss || (rtt ?? 0) > FAIR.rtt) return "poor";
  if (loss > GOOD.loss || (rtt ?? 0) > GOOD.rtt) return "fair";
  return "good";
}

export function formatRate(kbps) {
  if (!kbps) return "0 kbps";
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbps` : `${Math.round(kbps)} kbps`;
}

export function formatLoss(loss) {
  return `${(100 * (loss || 0)).toFixed(1)}%`;
}

export function formatRtt(rtt) {
  return rtt === null || rtt === undefined ? "—" : `${Math.round(rtt)} ms`;
}

function selectedPairRtt(report) {
  let rtt = null;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.currentRoundTripTime !== undefined) {
      rtt = s.currentRoundTripTime * 1000;
    }
  });
  return rtt;
}

function midOf(stat, trackMids) {
  if (stat.mid !== undefined && stat.mid !== null) return String(stat.mid);
  return trackMids.get(stat.trackIdentifier) ?? null;
}

export class StatsMonitor {
  constructor() {
    this.prev = new Map(); // "in:<mid>" / "out:<mid>" -> {bytes, packets, lost, at}
  }

  reset() {
    this.prev.clear();
  }

  _delta(key, now, bytes, packets, lost) {
    const prev = this.prev.get(key);
    this.prev.set(key, { bytes, packets, lost, at: now });
    if (!prev || now <= prev.at || bytes < prev.bytes) return null;
    return {
      seconds: (now - prev.at) / 1000,
      bytes: bytes - prev.bytes,
      packets: Math.max(0, packets - prev.packets),
      lost: Math.max(0, lost - prev.lost),
    };
  }

  /**
   * Per-classroom receive figures: Map classroom -> {kbps, loss, rtt, quality}.
   * `slotOfMid(mid)` gives the slot (with .classroom, the one feeding it now).
   */
  async receiving(pc, slotOfMid) {
    const out = new Map();
    if (!pc || pc.connectionState === "closed") return out;
    const report = await pc.getStats();
    const trackMids = new Map(pc.getTransceivers().map((t) => [t.receiver.track?.id, t.mid]));
    const rtt = selectedPairRtt(report);
    const now = performance.now();
    const sums = new Map();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      const mid = midOf(s, trackMids);
      const slot = mid === null ? null : slotOfMid(mid);
      const d = this._delta(`in:${mid}`, now, s.bytesReceived || 0, s.packetsReceived || 0, s.packetsLost || 0);
      if (!slot || !slot.classroom || !d) return;
      const sum = sums.get(slot.classroom) || { bits: 0, seconds: d.seconds, packets: 0, lost: 0 };
      sum.bits += d.bytes * 8;
      sum.packets += d.packets;
      sum.lost += d.lost;
      sums.set(slot.classroom, sum);
    });
    for (const [classroom, s] of sums) {
      const figures = { kbps: s.bits / s.seconds / 1000, loss: s.lost / Math.max(1, s.lost + s.packets), rtt };
      out.set(classroom, { ...figures, quality: quality(figures) });
    }
    return out;
  }

  /** Our uplink: {kbps, loss, rtt, quality} (loss and RTT as the server reports them back). */
  async sending(pc) {
    if (!pc || pc.connectionState === "closed") return null;
    const report = await pc.getStats();
    const now = performance.now();
    let bits = 0;
    let seconds = 0;
    let lossSum = 0;
    let lossCount = 0;
    let rtt = null;
    report.forEach((s) => {
      if (s.type === "outbound-rtp") {
        const d = this._delta(`out:${s.id}`, now, s.bytesSent || 0, s.packetsSent || 0, 0);
        if (d) {
          bits += d.bytes * 8;
          seconds = d.seconds;
        }
      } else if (s.type === "remote-inbound-rtp") {
        if (s.fractionLost !== undefined) {
          lossSum += s.fractionLost;
          lossCount += 1;
        }
        if (s.roundTripTime !== undefined) rtt = Math.max(rtt ?? 0, s.roundTripTime * 1000);
      }
    });
    // the ICE round trip is measured continuously; RTCP-based RTT depends on the server's reports
    rtt = selectedPairRtt(report) ?? rtt;
    const figures = { kbps: seconds ? bits / seconds / 1000 : 0, loss: lossCount ? lossSum / lossCount : 0, rtt };
    return { ...figures, quality: quality(figures) };
  }
}
