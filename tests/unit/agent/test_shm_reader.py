"""The agent's shared-memory reader: System V segments kept attached, checked on every read."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgeinspect.core.tensors import TensorError
from edgeinspect_inference.agent.shm import SegmentReader

from tests.helpers import sysv

pytestmark = pytest.mark.skipif(not sysv.AVAILABLE, reason="System V shared memory on 64-bit Linux")


def test_system_v_segments_stay_attached_until_removed_evicted_or_closed() -> None:
    reader = SegmentReader(Path("/dev/shm"), 1 << 20, max_attached=2)
    segments = [sysv.SysVSegment(4096) for _ in range(3)]
    try:
        for index, segment in enumerate(segments):
            segment.write(bytes([index + 1]) * 4096)
            assert bytes(reader.view(segment.id, 10, 5)) == bytes([index + 1]) * 5
        assert bytes(reader.view(segments[2].id, 0, 1)) == b"\x03"  # attached: read again, fresh check
        segments[2].close()  # the owner removes it while we hold it attached
        with pytest.raises(TensorError, match="removed by its owner"):
            reader.view(segments[2].id, 0, 4)
        with pytest.raises(TensorError, match="no System V segment"):
            reader.view(segments[2].id, 0, 4)  # detached: now it is really gone
        with pytest.raises(TensorError, match="runs past its end"):
            reader.view(segments[1].id, 4000, 200)
        with pytest.raises(TensorError, match="EI_MAX_TENSOR_BYTES"):
            reader.view(segments[1].id, 0, 2 << 20)
    finally:
        reader.close()
        for segment in segments:
            segment.close()
