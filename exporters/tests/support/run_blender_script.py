"""Runs an exported blender/import_scene.py against a small stand-in for Blender's
`bpy` (there is no Blender here) and prints, as JSON, what it asked Blender to do:
scene settings, the camera's keys, the background plate, markers, imported files.

Usage: python run_blender_script.py blender/import_scene.py
"""

import json
import os
import runpy
import sys
import types

record = {"keys": {}, "markers": [], "loaded": [], "gltf": []}


class Namespace(types.SimpleNamespace):
    pass


class Keyed:
    """Records `keyframe_insert(path, frame=...)` with the property's value then."""

    def keyframe_insert(self, data_path, frame):
        value = getattr(self, data_path)
        value = list(value) if isinstance(value, (tuple, list)) else value
        record["keys"].setdefault(data_path, []).append([frame, value])


class CameraData(Keyed):
    def __init__(self, name):
        self.name = name
        self.lens = 50.0
        self.background_images = Namespace(new=self._new_background)
        self.backgrounds = []
        self.show_background_images = False

    def _new_background(self):
        bg = Namespace(image=None, clip=None, source="IMAGE", image_user=Namespace())
        self.backgrounds.append(bg)
        return bg


class Object(Keyed):
    def __init__(self, name, data):
        self.name = name
        self.data = data
        self.type = "CAMERA" if isinstance(data, CameraData) else "MESH"
        self.location = (0.0, 0.0, 0.0)
        self.rotation_euler = (0.0, 0.0, 0.0)
        self.rotation_mode = "QUATERNION"


class Objects(list):
    def new(self, name, data):
        obj = Object(name, data)
        self.append(obj)
        return obj

    def remove(self, obj, do_unlink=True):
        list.remove(self, obj)


def load_image(path):
    if not os.path.isfile(path):
        raise RuntimeError("cannot load %s" % path)
    record["loaded"].append(path)
    return Namespace(filepath=path, source="FILE")


def import_gltf(filepath):
    if not os.path.isfile(filepath):
        raise RuntimeError("cannot read %s" % filepath)
    record["gltf"].append(filepath)
    objects.new("camera", CameraData("imported"))
    objects.new("depth points", None)
    return {"FINISHED"}


objects = Objects()
scene = Namespace(
    render=Namespace(),
    collection=Namespace(objects=Namespace(link=lambda obj: None)),
    timeline_markers=Namespace(new=lambda label, frame: record["markers"].append([frame, label])),
    frame_set=lambda frame: None,
    camera=None,
)
bpy = types.ModuleType("bpy")
bpy.context = Namespace(
    scene=scene,
    preferences=Namespace(edit=Namespace(keyframe_new_interpolation_type="BEZIER")),
    space_data=None,
)
bpy.data = Namespace(
    cameras=Namespace(new=CameraData),
    objects=objects,
    images=Namespace(load=load_image),
    movieclips=Namespace(load=load_image),
)
bpy.ops = Namespace(import_scene=Namespace(gltf=import_gltf))
bpy.path = Namespace(abspath=os.path.abspath)
sys.modules["bpy"] = bpy

runpy.run_path(sys.argv[1], run_name="__main__")

data = scene.camera.data
render = scene.render
print(
    json.dumps(
        {
            "fps": render.fps,
            "fps_base": render.fps_base,
            "frame_start": scene.frame_start,
            "frame_end": scene.frame_end,
            "resolution": [render.resolution_x, render.resolution_y],
            "scene_camera": scene.camera.name if scene.camera else None,
            "sensor_fit": data.sensor_fit,
            "sensor_width": data.sensor_width,
            "sensor_height": data.sensor_height,
            "rotation_mode": scene.camera.rotation_mode,
            "interpolation_restored": bpy.context.preferences.edit.keyframe_new_interpolation_type,
            "backgrounds": [
                {
                    "image": bg.image.filepath if bg.image else None,
                    "source": getattr(bg.image, "source", None),
                    "frame_start": getattr(bg.image_user, "frame_start", None),
                    "frame_duration": getattr(bg.image_user, "frame_duration", None),
                }
                for bg in data.backgrounds
            ],
            "show_background_images": data.show_background_images,
            "keys": record["keys"],
            "markers": record["markers"],
            "gltf": record["gltf"],
            "objects": [[o.name, o.type] for o in objects],
        }
    )
)
