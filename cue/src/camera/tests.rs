//! The camera rig's tests: moves, ramps and paths, frame by frame.

use super::*;

const FPS: f64 = 30.0;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn run(rig: &mut CameraRig, from: u64, frames: u64) {
    for f in from..from + frames {
        rig.advance(f, FPS, 1.0, |_, _| None);
    }
}

fn action(f: impl FnOnce(&mut Action)) -> Action {
    let mut a = Action::default();
    f(&mut a);
    a
}

#[test]
fn forward_at_yaw_zero_moves_down_negative_z() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.apply_action(&action(|a| a.forward = Some(1.0)), 0, FPS);
    run(&mut rig, 1, 30);
    let p = rig.pose();
    assert!(close(p.pos[2], -MOVE_SPEED), "{p:?}");
    assert!(close(p.pos[0], 0.0) && close(p.pos[1], 60.0), "{p:?}");
}

#[test]
fn yaw_turns_left_and_forward_follows_the_heading() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.apply_action(&action(|a| a.yaw = Some(1.0)), 0, FPS);
    run(&mut rig, 1, 45); // 1.5 s at 60 deg/s
    assert!(close(rig.pose().yaw, 90.0), "{:?}", rig.pose());
    rig.apply_action(
        &action(|a| {
            a.yaw = Some(0.0);
            a.forward = Some(0.5)
        }),
        46,
        FPS,
    );
    run(&mut rig, 46, 30);
    // Facing 90 degrees left of -Z is facing -X.
    let p = rig.pose();
    assert!(
        close(p.pos[0], -MOVE_SPEED * 0.5) && p.pos[2].abs() < 1e-9,
        "{p:?}"
    );
}

#[test]
fn strafe_rise_and_pitch() {
    let mut rig = CameraRig::new(Pose::default(), 30.0);
    rig.apply_action(
        &action(|a| {
            a.strafe = Some(1.0);
            a.rise = Some(-1.0);
            a.pitch = Some(1.0)
        }),
        0,
        FPS,
    );
    run(&mut rig, 1, 30);
    let p = rig.pose();
    assert!(close(p.pos[0], MOVE_SPEED), "{p:?}");
    assert!(close(p.pos[1], 60.0 - RISE_SPEED), "{p:?}");
    // 40 deg/s for 1 s, held at the model's limit of 30.
    assert!(close(p.pitch, 30.0), "{p:?}");
}

#[test]
fn axes_not_named_are_held() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.apply_action(&action(|a| a.forward = Some(1.0)), 0, FPS);
    rig.apply_action(&action(|a| a.yaw = Some(0.5)), 0, FPS);
    assert_eq!(rig.action(), [1.0, 0.0, 0.0, 0.5, 0.0]);
}

#[test]
fn timed_action_stops_after_its_duration() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.apply_action(
        &action(|a| {
            a.forward = Some(1.0);
            a.duration_s = Some(0.5)
        }),
        0,
        FPS,
    );
    run(&mut rig, 1, 60);
    assert_eq!(rig.action(), [0.0; 5]);
    // 15 frames of motion (frames 1..=14 move; at 15 the axis has stopped).
    assert!(
        close(rig.pose().pos[2], -MOVE_SPEED * 14.0 / FPS),
        "{:?}",
        rig.pose()
    );
}

#[test]
fn ground_keeps_the_camera_above_it() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.apply_action(&action(|a| a.rise = Some(-1.0)), 0, FPS);
    for f in 1..300 {
        rig.advance(f, FPS, 1.0, |_, _| Some(25.0));
    }
    assert!(close(rig.pose().pos[1], 25.0 + GROUND_CLEARANCE));
}

fn pt(t: f64, pos: [f64; 3], yaw: f64) -> PathPoint {
    PathPoint {
        t,
        pos,
        yaw,
        pitch: 0.0,
        fov: None,
    }
}

#[test]
fn path_passes_through_its_points_and_holds_at_the_end() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    let points = [
        pt(0.0, [0.0, 10.0, 0.0], 0.0),
        pt(1.0, [10.0, 10.0, 0.0], 10.0),
        pt(2.0, [10.0, 20.0, -10.0], 20.0),
    ];
    rig.follow_path(&points, false, 100);
    rig.advance(100, FPS, 1.0, |_, _| None);
    assert_eq!(rig.pose().pos, [0.0, 10.0, 0.0]);
    run(&mut rig, 101, 30); // t = 1 s at frame 130
    let p = rig.pose();
    assert!(
        p.pos
            .iter()
            .zip([10.0, 10.0, 0.0])
            .all(|(a, b)| close(*a, b)),
        "{p:?}"
    );
    assert!(close(p.yaw, 10.0));
    run(&mut rig, 131, 60);
    assert_eq!(rig.pose().pos, [10.0, 20.0, -10.0]);
    assert!(!rig.following_path());
}

#[test]
fn path_is_smooth_between_points() {
    let points = [
        pt(0.0, [0.0, 0.0, 0.0], 0.0),
        pt(1.0, [10.0, 0.0, 0.0], 0.0),
        pt(2.0, [20.0, 10.0, 0.0], 0.0),
    ];
    // No jumps: consecutive frames stay close, velocity changes gradually.
    let xs: Vec<f64> = (0..60)
        .map(|f| sample_path(&points, false, f as f64 / FPS).0.pos[0])
        .collect();
    let v: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(v.windows(2).all(|w| (w[1] - w[0]).abs() < 0.05), "{v:?}");
}

#[test]
fn path_turns_the_short_way_round() {
    let points = [pt(0.0, [0.0; 3], 170.0), pt(1.0, [0.0; 3], -170.0)];
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.follow_path(&points, false, 0);
    run(&mut rig, 0, 16);
    let yaw = rig.pose().yaw;
    assert!(yaw.abs() > 170.0, "went the long way: {yaw}");
}

#[test]
fn a_path_that_would_make_a_non_finite_pose_leaves_the_camera_where_it_was() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    let before = rig.pose();
    let points = [
        pt(0.0, [f64::MAX, 0.0, 0.0], 0.0),
        pt(1.0, [-f64::MAX, 0.0, 0.0], 0.0),
    ];
    rig.follow_path(&points, false, 0);
    run(&mut rig, 0, 31);
    let p = rig.pose();
    assert!(p.is_finite(), "{p:?}");
    assert_eq!(p.pos, before.pos);
}

/// A yaw so large that subtracting a turn leaves it unchanged stalled the model
/// thread for ever when unwrapping looped; unwrapping is arithmetic now.
#[test]
fn absurd_yaw_is_unwrapped_at_once() {
    for yaw in [1e300, -1e300, 1e12, f64::MAX, f64::NAN, f64::INFINITY] {
        let points = [pt(0.0, [0.0; 3], 0.0), pt(1.0, [0.0; 3], yaw)];
        let mut rig = CameraRig::new(Pose::default(), 80.0);
        rig.follow_path(&points, false, 0);
        run(&mut rig, 0, 31);
    }
    assert_eq!(shortest_turn(540.0), 180.0);
    assert_eq!(shortest_turn(-540.0), -180.0);
    assert_eq!(shortest_turn(180.0), 180.0);
    assert_eq!(shortest_turn(-180.0), -180.0);
    assert_eq!(shortest_turn(190.0), -170.0);
    assert_eq!(shortest_turn(-190.0), 170.0);
    assert_eq!(shortest_turn(725.0), 5.0);
}

#[test]
fn path_starting_later_glides_from_the_current_pose() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.follow_path(&[pt(2.0, [100.0, 60.0, 0.0], 0.0)], false, 0);
    rig.advance(0, FPS, 1.0, |_, _| None);
    assert_eq!(rig.pose().pos, Pose::default().pos);
    run(&mut rig, 1, 30);
    let x = rig.pose().pos[0];
    assert!(x > 10.0 && x < 90.0, "{x}");
}

#[test]
fn closed_loop_repeats_seamlessly() {
    let points = [
        pt(0.0, [0.0, 0.0, 0.0], 0.0),
        pt(1.0, [10.0, 0.0, 0.0], 0.0),
        pt(2.0, [10.0, 0.0, 10.0], 0.0),
        pt(3.0, [0.0, 0.0, 0.0], 0.0),
    ];
    let a = sample_path(&points, true, 0.5).0;
    let b = sample_path(&points, true, 3.5).0;
    assert_eq!(a, b);
    // Velocity is continuous across the seam.
    let before = sample_path(&points, true, 3.0 - 1e-4).0.pos;
    let after = sample_path(&points, true, 1e-4).0.pos;
    let at = sample_path(&points, true, 0.0).0.pos;
    for i in 0..3 {
        let v1 = (at[i] - before[i]) / 1e-4;
        let v2 = (after[i] - at[i]) / 1e-4;
        assert!((v1 - v2).abs() < 1e-2, "axis {i}: {v1} vs {v2}");
    }
    assert!(!sample_path(&points, true, 100.0).1);
}

#[test]
fn an_action_takes_over_from_a_path() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.follow_path(
        &[pt(0.0, [0.0; 3], 0.0), pt(10.0, [100.0, 0.0, 0.0], 0.0)],
        false,
        0,
    );
    rig.apply_action(&action(|a| a.forward = Some(1.0)), 5, FPS);
    assert!(!rig.following_path());
}

#[test]
fn yaw_stays_wrapped() {
    let mut rig = CameraRig::new(Pose::default(), 80.0);
    rig.apply_action(&action(|a| a.yaw = Some(1.0)), 0, FPS);
    run(&mut rig, 1, 30 * 60);
    assert!(rig.pose().yaw.abs() <= 180.0);
}
