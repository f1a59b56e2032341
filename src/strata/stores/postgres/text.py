"""The canonical text of a float in PostgreSQL: functions the store creates, spelling ``resolve/text.py`` in SQL.

PostgreSQL writes a float otherwise than DuckDB (``1`` for ``1.0``, ``1e+15``, ``Infinity``), and
its shortest digits are not always Python's: on the edge of a double's rounding interval it gives
17 digits where 16 read back (``5.9057112953129776e+16`` for ``5.905711295312978e+16``), and a
single's shortest digits are not DuckDB's (``1.1733922e+06`` for ``1173392.25``). So the text of a
float is worked out from its exact value, as ``resolve/text.py`` does:

- ``strata$layout(text)``: a number's text (``-0.00012``, ``1.5e+16``) laid out as Python's ``repr``;
- ``strata$exact(float8)``: the exact decimal value of a finite double's magnitude;
- ``strata$double_text(float8)``: :func:`strata.resolve.text.double_text` — PostgreSQL's own
  shortest digits, unless fewer digits read back, then the fewest digits nearest the value;
- ``strata$single_text(real)``: :func:`strata.resolve.text.single_text` — PostgreSQL's own shortest
  digits when neither the value nor the midpoints to its neighbours have 10 digits or fewer and
  the value is no power of two (no tie, no edge, a symmetric interval: the shortest digits are
  then DuckDB's), else worked out digit by digit from the exact value.

The session must write floats with their shortest digits (``extra_float_digits`` 1, as the store sets).

Numeric arithmetic is exact for sums and products (PostgreSQL's ``power`` is not: hence ``strata$pow``).
"""

from __future__ import annotations

LAYOUT = '"strata$layout"'
DOUBLE_TEXT = '"strata$double_text"'
SINGLE_TEXT = '"strata$single_text"'
NEWEST = f"{SINGLE_TEXT}(real)"
"""The signature created last: when it exists, so do the others (``FUNCTIONS_SQL`` runs in one transaction)."""

FUNCTIONS_SQL = r"""
CREATE OR REPLACE FUNCTION "strata$layout"(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    sign text := '';
    mantissa text;
    exponent int := 0;
    digits text;
    lead int;
BEGIN
    IF t = 'NaN' THEN RETURN 'nan'; END IF;
    IF t = 'Infinity' THEN RETURN 'inf'; END IF;
    IF t = '-Infinity' THEN RETURN '-inf'; END IF;
    IF left(t, 1) = '-' THEN sign := '-'; t := substr(t, 2); END IF;
    mantissa := split_part(t, 'e', 1);
    IF position('e' IN t) > 0 THEN exponent := split_part(t, 'e', 2)::int; END IF;
    digits := replace(mantissa, '.', '');
    exponent := exponent + length(split_part(mantissa, '.', 1)) - 1;
    lead := length(digits) - length(ltrim(digits, '0'));
    digits := rtrim(ltrim(digits, '0'), '0');
    IF digits = '' THEN RETURN sign || '0.0'; END IF;
    exponent := exponent - lead;
    IF exponent >= 16 OR exponent < -4 THEN
        RETURN sign || left(digits, 1) || CASE WHEN length(digits) > 1 THEN '.' || substr(digits, 2) ELSE '' END
            || 'e' || CASE WHEN exponent < 0 THEN '-' ELSE '+' END || CASE WHEN abs(exponent) < 10 THEN '0' ELSE '' END
            || abs(exponent)::text;
    END IF;
    IF exponent < 0 THEN RETURN sign || '0.' || repeat('0', -exponent - 1) || digits; END IF;
    IF length(digits) <= exponent + 1 THEN RETURN sign || rpad(digits, exponent + 1, '0') || '.0'; END IF;
    RETURN sign || left(digits, exponent + 1) || '.' || substr(digits, exponent + 2);
END
$f$;

CREATE OR REPLACE FUNCTION "strata$pow"(base numeric, n int) RETURNS numeric LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    result numeric := 1;
BEGIN
    WHILE n > 0 LOOP
        IF n % 2 = 1 THEN result := result * base; END IF;
        base := base * base;
        n := n / 2;
    END LOOP;
    RETURN result;
END
$f$;

CREATE OR REPLACE FUNCTION "strata$binary_exponent"(a float8) RETURNS int LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    e int := greatest(least(floor(ln(a) / ln(2.0))::int, 1023), -1074);
BEGIN
    WHILE e < 1023 AND a >= power(2::float8, e + 1) LOOP e := e + 1; END LOOP;
    WHILE e > -1074 AND a < power(2::float8, e) LOOP e := e - 1; END LOOP;
    RETURN e;
END
$f$;

CREATE OR REPLACE FUNCTION "strata$exact"(x float8) RETURNS numeric LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    a float8 := abs(x);
    s int;
    m bigint;
BEGIN
    IF a = 0 THEN RETURN 0; END IF;
    s := least(52 - "strata$binary_exponent"(a), 1074);
    m := (a * power(2::float8, s / 2) * power(2::float8, s - s / 2))::bigint;
    IF s >= 0 THEN RETURN m * "strata$pow"(5, s) * ('1e-' || s)::numeric; END IF;
    RETURN m * "strata$pow"(2, -s);
END
$f$;

CREATE OR REPLACE FUNCTION "strata$adjusted"(n numeric) RETURNS int LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    fraction text;
BEGIN
    IF n >= 1 THEN RETURN length(split_part(n::text, '.', 1)) - 1; END IF;
    fraction := split_part(n::text, '.', 2);
    RETURN length(ltrim(fraction, '0')) - length(fraction) - 1;
END
$f$;

CREATE OR REPLACE FUNCTION "strata$reads_back"(n numeric, a float8) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
BEGIN
    IF n >= $infinite THEN RETURN false; END IF;
    RETURN n::float8 = a;
END
$f$;

CREATE OR REPLACE FUNCTION "strata$double_text"(x float8) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    own text := x::text;
    sign text := CASE WHEN left(own, 1) = '-' THEN '-' ELSE '' END;
    a float8 := abs(x);
    shown numeric;
    exact numeric;
    shorter int;
    scale int;
    low numeric;
    high numeric;
    step numeric;
BEGIN
    IF x = 'NaN'::float8 OR a = 'Infinity'::float8 OR a = 0 THEN RETURN "strata$layout"(own); END IF;
    shown := abs(own::numeric);
    shorter := length(rtrim(ltrim(replace(shown::text, '.', ''), '0'), '0')) - 1;
    IF shorter < 1 THEN RETURN "strata$layout"(own); END IF;
    scale := shorter - 1 - "strata$adjusted"(shown);
    step := ('1e' || -scale)::numeric;
    low := trunc(shown, scale);
    IF NOT "strata$reads_back"(low, a) AND NOT "strata$reads_back"(low + step, a) THEN
        RETURN "strata$layout"(own);
    END IF;
    exact := "strata$exact"(a);
    FOR digits IN 1..17 LOOP
        scale := digits - 1 - "strata$adjusted"(exact);
        step := ('1e' || -scale)::numeric;
        low := trunc(exact, scale);
        high := low + step;
        IF exact - low > high - exact OR (exact - low = high - exact AND trunc(low / step) % 2 = 1) THEN
            low := high;
            high := high - step;
        END IF;
        IF "strata$reads_back"(low, a) THEN RETURN "strata$layout"(sign || low::text); END IF;
        IF "strata$reads_back"(high, a) THEN RETURN "strata$layout"(sign || high::text); END IF;
    END LOOP;
    RETURN "strata$layout"(own);
END
$f$;

CREATE OR REPLACE FUNCTION "strata$digit_count"(t text) RETURNS int LANGUAGE sql IMMUTABLE STRICT AS $f$
    SELECT length(rtrim(ltrim(replace(split_part(ltrim(t, '-'), 'e', 1), '.', ''), '0'), '0'))
$f$;

CREATE OR REPLACE FUNCTION "strata$single_text"(x real) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    sign text := CASE WHEN x < 0 THEN '-' ELSE '' END;
    a float8 := abs(x::float8);
    e int;
    exact numeric;
    ulp numeric;
    low numeric;
    high numeric;
    scale int;
    step numeric;
    nearest numeric;
BEGIN
    IF x = 'NaN'::real OR a = 'Infinity'::float8 OR a = 0 THEN RETURN "strata$double_text"(x::float8); END IF;
    e := greatest("strata$binary_exponent"(a), -126);
    IF a <> power(2::float8, e) AND "strata$digit_count"(a::text) > 10
        AND "strata$digit_count"((a - power(2::float8, e - 24))::text) > 9
        AND "strata$digit_count"((a + power(2::float8, e - 24))::text) > 9 THEN
        RETURN "strata$layout"(x::text);
    END IF;
    exact := "strata$exact"(a);
    ulp := "strata$exact"(power(2::float8, e - 23));
    high := exact + ulp * 0.5;
    low := exact - ulp * CASE WHEN a = power(2::float8, e) AND e > -126 THEN 0.25 ELSE 0.5 END;
    FOR digits IN 1..9 LOOP
        scale := digits - 1 - "strata$adjusted"(exact);
        step := ('1e' || -scale)::numeric;
        nearest := trunc(exact, scale);
        IF (exact - nearest) * 2 > step OR ((exact - nearest) * 2 = step AND trunc(nearest / step) % 2 = 1) THEN
            nearest := nearest + step;
        END IF;
        step := ('1e' || ("strata$adjusted"(nearest) - digits + 1))::numeric;
        EXIT WHEN abs(exact - nearest) * 2 = step OR nearest = low OR nearest = high;
        IF low < nearest AND nearest < high THEN RETURN "strata$layout"(sign || nearest::text); END IF;
    END LOOP;
    RETURN "strata$double_text"(x::float8);
END
$f$;
""".replace("$infinite", str(2**1024 - 2**970))
"""Every function, created or replaced in one go (from 2^1024 - 2^970 on, a number reads as infinity)."""
