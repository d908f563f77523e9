//! MPEG-TS as an SRT output sends it: a frame's packets leave as soon as the frame is
//! muxed, and say where the frame ends.
//!
//! Hand-rolled because GStreamer 1.22 has no element for either, and each costs a frame
//! at every receiver (measured in `docs/benchmarks.md`, section 4):
//! - `mpegtsmux alignment=7` (seven packets a message, what SRT carries) holds a
//!   frame's last packets until the next frame's fill the message. Muxed with
//!   `alignment=0` instead (a frame's packets in one buffer), the buffer is cut here into
//!   messages of at most seven packets, the last one short.
//! - A demuxer passes a video PES on when the next one starts, unless its header gives
//!   its length: muxers write 0 ("unbounded") for video. Where a whole PES is in one
//!   buffer and fits the 16-bit field, its length is written in.

/// Bytes of a transport stream packet.
pub const PACKET: usize = 188;
/// Packets in one SRT message: 1316 bytes, SRT's live payload.
pub const PER_MESSAGE: usize = 7;

/// Where a packet's payload starts, or None for a packet that is not one (no sync
/// byte, an adaptation field longer than the packet) or carries no payload.
fn payload_start(p: &[u8]) -> Option<usize> {
    if p.len() != PACKET || p[0] != 0x47 {
        return None;
    }
    match (p[3] >> 4) & 0b11 {
        0b01 => Some(4),
        0b11 => {
            let at = 5 + usize::from(p[4]);
            (at < PACKET).then_some(at)
        }
        _ => None,
    }
}

fn pid(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])
}

fn starts_unit(p: &[u8]) -> bool {
    p[1] & 0x40 != 0
}

/// Writes the length of every video PES that starts and ends in `data` (whole packets,
/// one muxed frame) and has none: the PES's payload bytes in this buffer, less the six
/// of its start code, stream id and length field. A PES that goes on past the buffer
/// (it is followed by no packet of its stream that starts another, and the buffer is
/// not known to end it) is left as it is, so only PES that end at the last packet of
/// their stream in the buffer are written, and then only when `whole` says the buffer
/// ends each frame it holds. Returns how many were written.
pub fn write_pes_lengths(data: &mut [u8], whole: bool) -> usize {
    if data.len() % PACKET != 0 {
        return 0;
    }
    let packets = data.len() / PACKET;
    let mut written = 0;
    let mut i = 0;
    while i < packets {
        let p = &data[i * PACKET..(i + 1) * PACKET];
        let Some(at) = payload_start(p) else {
            i += 1;
            continue;
        };
        let head = &p[at..];
        // A video PES (stream ids 0xE0..0xEF) starting here, its length left at 0.
        let video = starts_unit(p)
            && head.len() >= 6
            && head[..3] == [0, 0, 1]
            && head[3] & 0xf0 == 0xe0
            && head[4..6] == [0, 0];
        if !video {
            i += 1;
            continue;
        }
        let stream = pid(p);
        let mut bytes = head.len();
        let mut end = None;
        let mut j = i + 1;
        while j < packets {
            let q = &data[j * PACKET..(j + 1) * PACKET];
            if payload_start(q).is_some() && pid(q) == stream {
                if starts_unit(q) {
                    end = Some(j);
                    break;
                }
                bytes += PACKET - payload_start(q).unwrap_or(PACKET);
            }
            j += 1;
        }
        let complete = end.is_some() || whole;
        let length = bytes - 6;
        if complete && length <= usize::from(u16::MAX) {
            let field = i * PACKET + at + 4;
            data[field..field + 2].copy_from_slice(&(length as u16).to_be_bytes());
            written += 1;
        }
        i = end.unwrap_or(packets);
    }
    written
}

/// `data` (whole packets) cut into SRT messages of at most [`PER_MESSAGE`] packets.
pub fn messages(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.chunks(PACKET * PER_MESSAGE)
}

/// Passes what `muxed` (after `mpegtsmux alignment=0`) takes to `out` (before
/// `srtsink`) as SRT messages, each frame's video PES with its length written in, and
/// the end of the stream after them. The first message of a buffer keeps its time
/// stamps; none is marked a header, since an SRT sink sends the caps' stream headers to
/// each new receiver itself.
pub fn relay(muxed: &gst_app::AppSink, out: gst_app::AppSrc) {
    // The end of the stream goes on too, so that the SRT sink's pipeline ends.
    let eos = out.clone();
    muxed.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if out.caps().is_none() {
                    if let Some(caps) = sample.caps() {
                        out.set_caps(Some(&caps.to_owned()));
                    }
                }
                let buffers: Vec<gst::Buffer> = match (sample.buffer_list(), sample.buffer()) {
                    (Some(list), _) => list.iter_owned().collect(),
                    (None, Some(b)) => vec![b.to_owned()],
                    (None, None) => Vec::new(),
                };
                for buffer in buffers {
                    let Ok(map) = buffer.map_readable() else {
                        continue;
                    };
                    let mut data = map.to_vec();
                    // One muxed input frame a buffer: each frame it holds ends in it.
                    write_pes_lengths(&mut data, true);
                    for (n, message) in messages(&data).enumerate() {
                        let mut b = gst::Buffer::from_slice(message.to_vec());
                        if n == 0 {
                            let b = b.get_mut().expect("a new buffer is writable");
                            b.set_pts(buffer.pts());
                            b.set_dts(buffer.dts());
                        }
                        out.push_buffer(b)?;
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .eos(move |_| {
                let _ = eos.end_of_stream();
            })
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets of `pid` carrying `payload`, the first starting a PES of `stream` of
    /// length 0 (a 9-byte header with no PTS), stuffed with an adaptation field in the
    /// last.
    fn pes_of(pid: u16, stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut es = vec![0, 0, 1, stream, 0, 0, 0x80, 0, 0];
        es.extend_from_slice(payload);
        let mut out = Vec::new();
        for (n, part) in es.chunks(PACKET - 4).enumerate() {
            let mut p = vec![0x47, (pid >> 8) as u8 & 0x1f, pid as u8, 0x10];
            if n == 0 {
                p[1] |= 0x40;
            }
            if part.len() < PACKET - 4 {
                // Adaptation field stuffing: length, flags, then 0xff.
                p[3] = 0x30;
                let stuff = PACKET - 4 - part.len();
                p.push((stuff - 1) as u8);
                if stuff > 1 {
                    p.push(0);
                    p.extend(std::iter::repeat_n(0xff, stuff - 2));
                }
            }
            p.extend_from_slice(part);
            assert_eq!(p.len(), PACKET);
            out.extend(p);
        }
        out
    }

    fn pes(pid: u16, payload: &[u8]) -> Vec<u8> {
        pes_of(pid, 0xe0, payload)
    }

    fn length_of(data: &[u8], packet: usize) -> u16 {
        let p = &data[packet * PACKET..];
        let at = payload_start(&p[..PACKET]).unwrap();
        u16::from_be_bytes([p[at + 4], p[at + 5]])
    }

    #[test]
    fn a_whole_frame_gets_its_length_and_a_frame_that_goes_on_does_not() {
        let frame: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut one = pes(0x41, &frame);
        let packets = one.len() / PACKET;
        // Audio first (another PID and stream): it does not count.
        let mut data = pes_of(0x44, 0xc0, &[1; 300]);
        data.extend(one.clone());
        assert_eq!(write_pes_lengths(&mut data, true), 1);
        // 3 bytes of header extension + 3 of flags and length beyond the six.
        assert_eq!(usize::from(length_of(&data, 2)), frame.len() + 3);
        // Not known to end the frame, and no next PES in it: left unbounded.
        assert_eq!(write_pes_lengths(&mut one, false), 0);
        assert_eq!(length_of(&one, 0), 0);
        // Followed by the next frame's start: the first is complete either way.
        let mut two = pes(0x41, &frame);
        two.extend(pes(0x41, &frame[..100]));
        assert_eq!(write_pes_lengths(&mut two, false), 1);
        assert_eq!(usize::from(length_of(&two, 0)), frame.len() + 3);
        assert_eq!(length_of(&two, packets), 0);
    }

    #[test]
    fn a_frame_too_long_for_the_field_and_bytes_that_are_not_packets_are_left_alone() {
        let mut big = pes(0x41, &vec![7; 70_000]);
        assert_eq!(write_pes_lengths(&mut big, true), 0);
        assert_eq!(length_of(&big, 0), 0);
        let mut odd = pes(0x41, &[1; 10]);
        odd.push(0);
        let before = odd.clone();
        assert_eq!(write_pes_lengths(&mut odd, true), 0);
        assert_eq!(odd, before);
    }

    /// A real x264 stream muxed whole and relayed over SRT on loopback to a real
    /// receiver: every frame decodes, and every muxed buffer began its video PES (so no
    /// PES runs on past the buffer it was measured in).
    #[test]
    fn relayed_frames_reach_an_srt_receiver_whole() {
        use gst::prelude::*;
        gst::init().unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let send = gst::parse::launch(&format!(
            "videotestsrc is-live=true num-buffers=90 pattern=ball ! video/x-raw,width=320,height=180,framerate=30/1 ! \
             x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h264parse config-interval=-1 ! \
             mpegtsmux alignment=0 ! appsink name=muxed sync=false async=false \
             appsrc name=messages is-live=true format=time ! \
             srtsink uri=srt://127.0.0.1:{port}?mode=listener latency=40 wait-for-connection=false sync=false async=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let muxed = send
            .by_name("muxed")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        // Each buffer's first video packet must start a PES.
        let began = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        {
            let began = began.clone();
            muxed.static_pad("sink").unwrap().add_probe(
                gst::PadProbeType::BUFFER,
                move |_, info| {
                    if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                        let map = b.map_readable().unwrap();
                        let first = map
                            .chunks_exact(PACKET)
                            .find(|p| payload_start(p).is_some() && pid(p) == 0x41);
                        if first.is_some_and(|p| !starts_unit(p)) {
                            began.store(false, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        let out = send
            .by_name("messages")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        relay(&muxed, out);
        send.set_state(gst::State::Playing).unwrap();
        let receive = gst::parse::launch(&format!(
            "srtsrc uri=srt://127.0.0.1:{port}?mode=caller latency=40 ! tsdemux ! h264parse ! \
             avdec_h264 ! appsink name=frames sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let frames = receive
            .by_name("frames")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        receive.set_state(gst::State::Playing).unwrap();
        let mut decoded = 0;
        while frames
            .try_pull_sample(gst::ClockTime::from_seconds(3))
            .is_some()
        {
            decoded += 1;
        }
        let _ = send.set_state(gst::State::Null);
        let _ = receive.set_state(gst::State::Null);
        // The receiver joins a moment in and starts at a keyframe.
        assert!(decoded >= 40, "{decoded} frames decoded");
        assert!(
            began.load(std::sync::atomic::Ordering::Relaxed),
            "a PES ran past its buffer"
        );
    }

    #[test]
    fn messages_are_seven_packets_and_the_last_is_short() {
        let data = vec![0x47; PACKET * 16];
        let sizes: Vec<usize> = messages(&data).map(<[u8]>::len).collect();
        assert_eq!(sizes, [1316, 1316, 376]);
    }
}
