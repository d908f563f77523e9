//! MPEG-TS as an SRT output sends it: a frame's packets leave as soon as the frame is
//! muxed.
//!
//! Hand-rolled because GStreamer 1.22 has no element for it: `mpegtsmux alignment=7`
//! (seven packets a message, what SRT carries) holds a frame's last packets until the
//! next frame's fill the message, and `alignment=0` (a frame's packets in one buffer)
//! gives buffers larger than an SRT message, which `srtsink` does not cut. So the output
//! muxes with `alignment=0` and cuts each buffer here into messages of at most seven
//! packets, the last one short. Measured in `docs/benchmarks.md` (section 4, where the
//! milliseconds go): two frames less from camera to picture, at a GStreamer receiver
//! and at FFmpeg.

/// Bytes of a transport stream packet.
pub const PACKET: usize = 188;
/// Packets in one SRT message: 1316 bytes, SRT's live payload.
pub const PER_MESSAGE: usize = 7;

/// Where each SRT message of `size` bytes of whole packets lies: at most
/// [`PER_MESSAGE`] packets each, the last one short.
pub fn messages(size: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let step = PACKET * PER_MESSAGE;
    (0..size)
        .step_by(step)
        .map(move |at| at..size.min(at + step))
}

/// Passes what `muxed` (after `mpegtsmux alignment=0`) takes to `out` (before
/// `srtsink`) as SRT messages, and the end of the stream after them. The first message
/// of a buffer keeps its time stamps; none is marked a header, since an SRT sink sends
/// the caps' stream headers to each new receiver itself.
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
                    for (n, range) in messages(buffer.size()).enumerate() {
                        // The same memory, without the muxer's flags (a header flag
                        // would make the sink drop it) or time stamps.
                        let mut b = buffer
                            .copy_region(gst::BufferCopyFlags::MEMORY, range)
                            .map_err(|_| gst::FlowError::Error)?;
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

    /// A real x264 stream muxed whole and relayed over SRT on loopback to a real
    /// receiver: its frames decode (`srtsink` alone sends none of buffers this large).
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
    }

    #[test]
    fn messages_are_seven_packets_and_the_last_is_short() {
        let sizes: Vec<usize> = messages(PACKET * 16).map(|r| r.len()).collect();
        assert_eq!(sizes, [1316, 1316, 376]);
        assert_eq!(
            messages(PACKET * 7)
                .map(|r| (r.start, r.end))
                .collect::<Vec<_>>(),
            [(0, 1316)]
        );
        assert_eq!(messages(0).count(), 0);
    }
}
