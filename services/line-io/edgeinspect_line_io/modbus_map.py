"""The Modbus register map (docs/line-io.md, "Modbus map"): one pure function from a part to registers.

Both Modbus outputs use it: the server output serves it for PLCs that poll, the client output writes
the same block into a PLC's holding registers. Registers are 16-bit; 32-bit values are two registers,
high word first (the usual PLC "big-endian word order").

Holding registers, offsets from the block's base (the server's base is 0):

    0  result counter     +1 per published part (wraps at 65535): poll it to see a new result
    1  verdict            0 none, 1 ok, 2 defect, 3 error, 4 no verdict by the gate time
    2  action             0 pass, 1 reject, 2 reject missed (verdict too late, not actuated)
    3  score x 1000       0..1000
    4-5   part id         uint32 when the part id is a number, else 0 (see 16-31 for text)
    6-7   defect area px  uint32
    8-11  defect box      x0, y0, x1, y1 (0 when none)
    12 missed rejects     total since start (wraps)
    13 vision state       0 Preoperational, 1 Initialized, 2 Ready, 3 SingleExecution,
                          4 ContinuousExecution, 5 Error
    14-15 latency ms      capture -> result, uint32
    16-31 part id text    up to 32 ASCII characters, two per register (high byte first), 0-padded

Coils:

    0  reject             the reject pulse (on for EI_REJECT_WIDTH_MS at the gate time)
    1  part good          IsPartGood of the last result
    2  result toggle      flips with every published part
    3  ready              1 in Ready / SingleExecution / ContinuousExecution

Written by the PLC (our server only, with ``EI_INPUTS=modbus-server``):

    coil 8                trigger: write 1 to take exactly one frame (rising edge); we write it
                          back to 0 once the camera has taken the frame (or refused): the PLC's ack
    32-33 part id         uint32, high word first (0: none), written before the trigger coil
    34-49 part id text    up to 32 ASCII characters like 16-31 (wins over 32-33 when not empty);
                          both are cleared with the ack, so a part id is never used twice
"""

from __future__ import annotations

from edgeinspect_line_io.verdicts import PartResult

BLOCK_SIZE = 32
COILS = 4
VERDICT_CODES = {"ok": 1, "defect": 2, "error": 3, "none": 4}
REG_COUNTER, REG_STATE, REG_MISSED = 0, 13, 12
COIL_REJECT, COIL_GOOD, COIL_TOGGLE, COIL_READY = 0, 1, 2, 3
COIL_TRIGGER = 8
REG_TRIGGER_PART, REG_TRIGGER_PART_TEXT, TRIGGER_PART_REGISTERS = 32, 34, 18
U16 = 0xFFFF


def _u32(value: int) -> list[int]:
    value = max(0, min(int(value), 0xFFFFFFFF))
    return [(value >> 16) & U16, value & U16]


def part_number(part_id: str) -> int:
    """The part id as the uint32 of registers 4-5 (0 when it is not a number that fits)."""
    return int(part_id) if part_id.isdigit() and int(part_id) <= 0xFFFFFFFF else 0


def text_registers(text: str, registers: int = 16) -> list[int]:
    """ASCII text, two characters per register, high byte first, zero-padded (longer is cut)."""
    raw = text.encode("ascii", "replace")[: registers * 2].ljust(registers * 2, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def text_from_registers(values: list[int]) -> str:
    raw = b"".join(bytes([(v >> 8) & 0xFF, v & 0xFF]) for v in values)
    return raw.rstrip(b"\0").decode("ascii", "replace")


def result_block(part: PartResult, missed_total: int, state: int) -> list[int]:
    """The 32 holding registers of one published part."""
    action = (2 if part.late else 1) if part.action == "reject" else 0
    box = list(part.bbox) if part.bbox is not None else [0, 0, 0, 0]
    latency_ms = max(0, (part.received_ns - part.capture_ns) // 1_000_000)
    return [
        part.seq & U16,
        VERDICT_CODES.get(part.verdict, 3),
        action,
        max(0, min(1000, round(part.score * 1000))),
        *_u32(part_number(part.part_id)),
        *_u32(part.defect_area_px),
        *[max(0, min(v, U16)) for v in box],
        missed_total & U16,
        state,
        *_u32(latency_ms),
        *text_registers(part.part_id),
    ]


def u32_from(high: int, low: int) -> int:
    return ((high & U16) << 16) | (low & U16)


def trigger_part_id(registers: list[int]) -> str:
    """The part id a PLC wrote into registers 32-49 before its trigger: the text when there is one,
    else the uint32 (empty when both are zero)."""
    text = text_from_registers(registers[2:TRIGGER_PART_REGISTERS]).strip()
    if text:
        return text
    number = u32_from(registers[0], registers[1])
    return str(number) if number else ""
