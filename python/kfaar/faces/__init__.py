"""Face I/O: read photos, detect (YuNet), align to the ArcFace template, encode (SFace), paste back.

>>> from kfaar.faces import load_image, FaceDetector, align_face, SFaceEncoder
>>> rgb = load_image("photo.jpg")
>>> with FaceDetector() as det, SFaceEncoder() as enc:
...     faces = det.detect(rgb)
...     crops = np.stack([align_face(rgb, f.landmarks).crop for f in faces])
...     z = enc.encode(crops)               # (N, 128), unit rows
"""

from __future__ import annotations

from kfaar.faces.align import (
    CANONICAL_TEMPLATE,
    AlignedFace,
    align_face,
    canonical_template,
    face_mask,
    paste_back,
    transform_points,
)
from kfaar.faces.batch import BatchReport, iter_images, process_images, process_images_overlapped
from kfaar.faces.detect import DetectorOptions, Face, FaceDetector, main_face
from kfaar.faces.encode import EMBEDDING_DIM, SFaceEncoder
from kfaar.faces.image import PhotoFile, load_alpha, load_image, load_image_alpha, load_photo_file

__all__ = [
    "CANONICAL_TEMPLATE",
    "EMBEDDING_DIM",
    "AlignedFace",
    "BatchReport",
    "DetectorOptions",
    "Face",
    "FaceDetector",
    "PhotoFile",
    "SFaceEncoder",
    "align_face",
    "canonical_template",
    "face_mask",
    "iter_images",
    "load_alpha",
    "load_image_alpha",
    "load_image",
    "load_photo_file",
    "main_face",
    "paste_back",
    "process_images",
    "process_images_overlapped",
    "transform_points",
]
