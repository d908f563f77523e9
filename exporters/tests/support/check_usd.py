"""Opens an exported camera.usda with usd-core and prints what a USD reader sees, as
JSON: stage metadata, the findings of the compliance checker (UsdUtils.ComplianceChecker)
and of the validation framework that succeeds it (UsdValidation, what `usdchecker`
runs), and per time sample the camera's authored values and its world transform
(position, view direction, up) and horizontal field of view.

Usage: python check_usd.py camera/camera.usda
"""

import json
import sys

from pxr import Gf, Usd, UsdGeom, UsdUtils, UsdValidation


def vec(v):
    return [float(x) for x in v]


def validation_errors(stage):
    """Every registered validator's complaints, as strings."""
    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    return [e.GetErrorAsString() for e in errors if not e.HasNoError()]


def main(path):
    stage = Usd.Stage.Open(path)
    checker = UsdUtils.ComplianceChecker()
    checker.CheckCompliance(path)
    camera_prim = stage.GetPrimAtPath("/cuecast/camera")
    camera = UsdGeom.Camera(camera_prim)
    xformable = UsdGeom.Xformable(camera_prim)
    translate = camera_prim.GetAttribute("xformOp:translate")
    rotate = camera_prim.GetAttribute("xformOp:rotateXYZ")
    focal = camera.GetFocalLengthAttr()
    samples = []
    for time in translate.GetTimeSamples():
        world = xformable.ComputeLocalToWorldTransform(time)
        gf_camera = camera.GetCamera(time)
        samples.append(
            {
                "time": time,
                "translate": vec(translate.Get(time)),
                "rotateXYZ": vec(rotate.Get(time)),
                "focalLength": float(focal.Get(time)),
                "position": vec(world.ExtractTranslation()),
                "forward": vec(world.TransformDir(Gf.Vec3d(0, 0, -1)).GetNormalized()),
                "up": vec(world.TransformDir(Gf.Vec3d(0, 1, 0)).GetNormalized()),
                "hfov": gf_camera.GetFieldOfView(Gf.Camera.FOVHorizontal),
            }
        )
    backplate = camera_prim.GetAttribute("cuecast:backplate")
    report = {
        "upAxis": UsdGeom.GetStageUpAxis(stage),
        "metersPerUnit": UsdGeom.GetStageMetersPerUnit(stage),
        "timeCodesPerSecond": stage.GetTimeCodesPerSecond(),
        "framesPerSecond": stage.GetFramesPerSecond(),
        "startTimeCode": stage.GetStartTimeCode(),
        "endTimeCode": stage.GetEndTimeCode(),
        "defaultPrim": str(stage.GetDefaultPrim().GetPath()),
        "cameraType": camera_prim.GetTypeName(),
        "projection": camera.GetProjectionAttr().Get(),
        "horizontalAperture": camera.GetHorizontalApertureAttr().Get(),
        "verticalAperture": camera.GetVerticalApertureAttr().Get(),
        "xformOpOrder": [str(op.GetOpName()) for op in xformable.GetOrderedXformOps()],
        "focalTimeSamples": list(focal.GetTimeSamples()),
        "backplate": backplate.Get() if backplate else None,
        "compliance": {
            "errors": list(checker.GetErrors()),
            "warnings": list(checker.GetWarnings()),
            "failedChecks": list(checker.GetFailedChecks()),
        },
        "validation": validation_errors(stage),
        "samples": samples,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
