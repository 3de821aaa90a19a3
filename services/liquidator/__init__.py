"""The liquidator service. Its core runs compiled when an up-to-date build exists (see
libs/common/native.py), otherwise as the Python it is written in."""

from libs.common.native import extend_path

extend_path(__path__, __name__)
