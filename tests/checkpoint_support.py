"""Checkpoint files made by hand for the tests: the oldest checkpoint songgen wrote (0.1.0), and
copies of a checkpoint with its pickle replaced, padded, or its entries grown."""

import zipfile
from pathlib import Path

OLD = Path(__file__).parent / "fixtures" / "checkpoint-v1-0.1.0.pt"


def rezip(target: Path, source: Path = OLD, pickle_bytes: bytes | None = None,
          padding: int = 0, compress: bool = False, extra: int = 0,
          grow: str | None = None) -> Path:
    """A copy of `source` made by hand: its data.pkl replaced, padded after the pickle's end
    (deflated when `compress`), `extra` entries more, or the storage entry `grow` made larger."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for entry in old.infolist():
            data = old.read(entry)
            if entry.filename.endswith("/data.pkl"):
                data = data if pickle_bytes is None else pickle_bytes
                info = zipfile.ZipInfo(entry.filename)
                info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
                with new.open(info, "w", force_zip64=True) as out:
                    out.write(data)
                    chunk = bytes(1 << 20)
                    for _ in range(padding // len(chunk)):
                        out.write(chunk)
                continue
            if grow is not None and entry.filename.endswith(f"/data/{grow}"):
                data += bytes(4096)
            new.writestr(entry, data)
        prefix = old.namelist()[0].split("/")[0]
        for i in range(extra):
            new.writestr(f"{prefix}/extra/{i}", b"")
    return target
