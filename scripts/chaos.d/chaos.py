#!/usr/bin/env python3
"""The Python side of scripts/chaos: the load on PostgreSQL, the pipeline's backlog, the
comparison of PostgreSQL with Cassandra, and the clean-up. scripts/chaos runs it from its own
virtualenv (scripts/chaos.d/requirements.txt); each subcommand is one step of the run:

  load       32 writers make N changes to `users` with plain SQL (the change log fills by trigger)
  status     one line: the cdc cursor's backlog, the consumer group's lag, dead letters
  wait-idle  waits (bounded) until the cursor has passed every change and the group has
             committed every message
  verify     compares PostgreSQL's users with users_by_id and users_by_country; exit 1 on any
             missing, stale or extra row
  cleanup    drops the keyspace, deletes the topics, soft-deletes the registry subject

Only loopback addresses are used: every endpoint comes from the local stack's variables.
"""

import argparse
import datetime as dt
import json
import logging
import os
import random
import sys
import threading
import time
import urllib.request
import uuid

UTC = dt.timezone.utc


def log(message):
    print(f"chaos: {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------

# Nationalities a user is created in or moved to: values shaped like the API's (taken from the
# captured fixtures), so that every record normalizes. `nat` is the ISO code the country code is
# taken from; TR is left out because its names follow Turkish casing, which the comparison's
# simple title case would not predict.
NATIONS = [
    # nat, country, phone, cell, city, state, postcode, tz offset, tz description, lat, lon
    ("DE", "Germany", "0171-2345678", "0172-3456789", "Berlin", "Berlin", "10115", "+1:00",
     "Brussels, Copenhagen, Madrid, Paris", 52.52, 13.405),
    ("FR", "France", "01-23-45-67-89", "06-57-18-68-96", "Dijon", "Marne", "21000", "+1:00",
     "Brussels, Copenhagen, Madrid, Paris", 47.322, 5.041),
    ("GB", "United Kingdom", "017683 39866", "0776-997-038", "Liverpool", "Hertfordshire",
     "K47 1GX", "0:00", "Western Europe Time, London, Lisbon, Casablanca", 53.41, -2.98),
    ("ES", "Spain", "933-748-714", "610-727-153", "Lugo", "Aragón", "50243", "+1:00",
     "Brussels, Copenhagen, Madrid, Paris", 43.01, -7.56),
    ("NL", "Netherlands", "(381)-409-3519", "(544)-604-9955", "Daarlerveen", "Zeeland", "6161",
     "+1:00", "Brussels, Copenhagen, Madrid, Paris", 52.44, 6.58),
    ("CH", "Switzerland", "079 468 64 28", "078 437 82 70", "Dürnten", "Schaffhausen", "4977",
     "+1:00", "Brussels, Copenhagen, Madrid, Paris", 47.28, 8.84),
    ("AU", "Australia", "01-6022-1209", "0486-209-164", "Gladstone", "Queensland", "4680",
     "+10:00", "Eastern Australia, Guam, Vladivostok", -23.84, 151.25),
    ("US", "United States", "(188)-084-9627", "(142)-150-9944", "Cape Coral", "Florida", "33904",
     "-5:00", "Eastern Time (US & Canada), Bogota, Lima", 26.56, -81.94),
    ("CA", "Canada", "019-478-6485", "440-485-0430", "Halifax", "Nova Scotia", "B3H 4R2",
     "-4:00", "Atlantic Time (Canada), Caracas, La Paz", 44.65, -63.57),
    ("NO", "Norway", "57149519", "92067683", "Rød", "Hedmark", "9302", "+1:00",
     "Brussels, Copenhagen, Madrid, Paris", 60.79, 11.07),
    ("DK", "Denmark", "62386730", "43809706", "Hornbæk", "Sjælland", "3100", "+1:00",
     "Brussels, Copenhagen, Madrid, Paris", 56.09, 12.46),
    ("IE", "Ireland", "051-214-8205", "081-366-2285", "Fermoy", "Cork", "P61", "0:00",
     "Western Europe Time, London, Lisbon, Casablanca", 52.14, -8.28),
    ("BR", "Brazil", "(28) 7968-1772", "(37) 0185-1210", "Rondonópolis", "Mato Grosso", "93846",
     "-3:00", "Brazil, Buenos Aires, Georgetown", -16.47, -54.64),
    ("MX", "Mexico", "(631) 212 7425", "(643) 727 9373", "Los Volcanes", "Hidalgo", "94167",
     "-6:00", "Central Time (US & Canada), Mexico City", 20.1, -98.76),
]

# All lower case, all upper case or capitalized parts only: Rust's title case and the simple one
# in `expected_first_name` agree on these.
FIRST_NAMES = [
    "anna", "Ben", "CLARA", "jean-luc", "Marie-Claire", "oskar", "LUKAS", "emma", "noah",
    "sofia", "Mateo", "lea", "HUGO", "ida", "nils", "Zoe", "liam", "mia", "elias", "Ava",
    "ANNE-SOPHIE", "karl", "Freya", "tomas", "Ines", "OLIVIA", "jonas", "Maja", "felix", "nora",
]
LAST_NAMES = ["Schneider", "Dubois", "Smith", "García", "de Vries", "Müller", "Brown", "Hansen",
              "Murphy", "Silva", "Hernández", "Olsen", "Taylor", "Moreau"]

INSERT_SQL = """
INSERT INTO users (
    id, gender, title, first_name, last_name, email, username, date_of_birth, registered_at,
    phone, cell, street_number, street_name, city, state, country, postcode, latitude, longitude,
    timezone_offset, timezone_description, national_id_name, national_id_value,
    picture_large, picture_medium, picture_thumbnail, nat, raw, source_api_version, age, id_source
) VALUES (
    %(id)s, %(gender)s, %(title)s, %(first_name)s, %(last_name)s, %(email)s, %(username)s,
    %(date_of_birth)s, %(registered_at)s, %(phone)s, %(cell)s, %(street_number)s,
    %(street_name)s, %(city)s, %(state)s, %(country)s, %(postcode)s, %(latitude)s,
    %(longitude)s, %(timezone_offset)s, %(timezone_description)s, NULL, NULL,
    %(picture)s, %(picture)s, %(picture)s, %(nat)s, %(raw)s, '1.4', %(age)s, 'login_uuid'
) ON CONFLICT (id) DO NOTHING
"""

# A move: another nationality (with its country, phones, address and time zone) and another
# registration, so the user's users_by_country row moves partition and clustering key. The
# IS DISTINCT FROM keeps a no-op update (which the trigger would not log) from being counted.
MOVE_SQL = """
UPDATE users SET nat = %(nat)s, country = %(country)s, phone = %(phone)s, cell = %(cell)s,
    city = %(city)s, state = %(state)s, postcode = %(postcode)s, latitude = %(latitude)s,
    longitude = %(longitude)s, timezone_offset = %(timezone_offset)s,
    timezone_description = %(timezone_description)s, registered_at = %(registered_at)s
WHERE id = %(id)s AND (nat, registered_at) IS DISTINCT FROM (%(nat)s, %(registered_at)s)
"""

# Same country, another registration: the users_by_country row moves within its partition.
REREGISTER_SQL = """
UPDATE users SET registered_at = %(registered_at)s
WHERE id = %(id)s AND registered_at IS DISTINCT FROM %(registered_at)s
"""

# An update in place: users_by_country keeps its key, the row's values change.
RENAME_SQL = """
UPDATE users SET first_name = %(first_name)s, email = %(email)s
WHERE id = %(id)s AND first_name IS DISTINCT FROM %(first_name)s
"""

DELETE_SQL = "DELETE FROM users WHERE id = %(id)s"

REGISTERED_FROM = dt.datetime(2002, 1, 1, tzinfo=UTC)
REGISTERED_SPAN_MS = int((dt.datetime(2023, 1, 1, tzinfo=UTC) - REGISTERED_FROM).total_seconds() * 1000)

# The operations and their weights among the changes.
OPERATIONS = [("insert", 30), ("move", 20), ("reregister", 10), ("rename", 10), ("delete", 15),
              ("reinsert", 15)]


class Pool:
    """A set with O(1) random choice, for the ids the writers act on."""

    def __init__(self):
        self.items = []
        self.index = {}

    def add(self, item):
        if item not in self.index:
            self.index[item] = len(self.items)
            self.items.append(item)

    def remove(self, item):
        i = self.index.pop(item, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.index[last] = i

    def pick(self, rng):
        return rng.choice(self.items) if self.items else None

    def __len__(self):
        return len(self.items)


class Load:
    """What the writers share: the ids, the pacing and the counters (all under `lock`)."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.live = Pool()
        self.deleted = Pool()
        # The first users created, picked often by updates, deletes and re-inserts from every
        # writer: concurrent transactions then queue on the same rows, so one user's versions
        # come from transactions that commit in another order than their ids were assigned.
        self.hot = []
        self.committed = 0
        self.slot = 0
        self.counts = {name: 0 for name, _ in OPERATIONS}
        self.transactions = 0
        self.multi = 0
        self.long = 0
        self.long_open = 0
        self.longest_open_s = 0.0
        self.rolled_back = 0
        self.rolled_back_changes = 0
        self.deadlocks = 0
        self.error = None
        self.started = time.monotonic()
        self.rate = args.changes / args.seconds if args.seconds > 0 else 0.0
        self.long_started = 0

    def start_long(self):
        """Whether the caller's next transaction is a long one: --long-tx of them, spread evenly
        over the load (the k-th once k + 1/2 shares of the changes are committed)."""
        with self.lock:
            due = (self.long_started + 0.5) * self.args.changes / max(1, self.args.long_tx)
            if self.long_started < self.args.long_tx and self.committed >= due:
                self.long_started += 1
                return True
            return False

    def done(self):
        return self.committed >= self.args.changes or self.error is not None

    def claim(self, n):
        """Takes n change slots and returns when the first is due: the load is spread evenly
        over --seconds (a writer that is behind goes at once)."""
        with self.lock:
            first = self.slot
            self.slot += n
        if self.rate > 0:
            delay = self.started + first / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def random_user(rng, user_id):
    nat = rng.choice(NATIONS)
    first = rng.choice(FIRST_NAMES)
    age = rng.randint(18, 75)
    return {
        "id": user_id,
        "gender": rng.choice(["female", "male"]),
        "title": rng.choice(["Ms", "Mr", "Mrs", "Dr"]),
        "first_name": first,
        "last_name": rng.choice(LAST_NAMES),
        "email": f"{first.lower()}.{user_id[:8]}@example.com",
        "username": f"user-{user_id[:12]}",
        "date_of_birth": dt.datetime(2024 - age, rng.randint(1, 12), rng.randint(1, 28), 4, 5, 6,
                                     tzinfo=UTC),
        "registered_at": random_registration(rng),
        "street_number": str(rng.randint(1, 9999)),
        "street_name": "Lindenstraße",
        "picture": f"https://randomuser.me/api/portraits/women/{rng.randint(0, 99)}.jpg",
        "age": age,
        **nation_fields(nat),
    }


def nation_fields(nat):
    (code, country, phone, cell, city, state, postcode, tz_offset, tz_description, lat, lon) = nat
    return {"nat": code, "country": country, "phone": phone, "cell": cell, "city": city,
            "state": state, "postcode": postcode, "timezone_offset": tz_offset,
            "timezone_description": tz_description, "latitude": lat, "longitude": lon}


def random_registration(rng):
    """Millisecond precision, what Cassandra's `timestamp` keeps: the comparison is then exact."""
    return REGISTERED_FROM + dt.timedelta(milliseconds=rng.randrange(REGISTERED_SPAN_MS))


def pick_operation(rng, load):
    with load.lock:
        live, deleted = len(load.live), len(load.deleted)
    name = rng.choices([n for n, _ in OPERATIONS], [w for _, w in OPERATIONS])[0]
    if name == "reinsert" and deleted == 0:
        name = "insert"
    if name in ("move", "reregister", "rename", "delete") and live < 50:
        name = "insert"
    return name


def pick_id(rng, load, pool_name):
    with load.lock:
        if pool_name == "live" and load.hot and rng.random() < 0.2:
            return rng.choice(load.hot)
        return (load.live if pool_name == "live" else load.deleted).pick(rng)


def one_change(cur, rng, load, op):
    """Runs one change; returns (op, id, rows affected)."""
    from psycopg.types.json import Jsonb

    if op == "insert":
        user_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    elif op == "reinsert":
        user_id = pick_id(rng, load, "deleted")
    else:
        user_id = pick_id(rng, load, "live")
    if user_id is None:
        return op, None, 0
    if op in ("insert", "reinsert"):
        user = random_user(rng, user_id)
        user["raw"] = Jsonb({"login": {"uuid": user_id, "password": f"pw-{user_id[:8]}",
                                       "salt": "NaCl1234"},
                             "name": {"first": user["first_name"]}})
        cur.execute(INSERT_SQL, user)
    elif op == "move":
        params = {"id": user_id, "registered_at": random_registration(rng),
                  **nation_fields(rng.choice(NATIONS))}
        cur.execute(MOVE_SQL, params)
    elif op == "reregister":
        cur.execute(REREGISTER_SQL, {"id": user_id, "registered_at": random_registration(rng)})
    elif op == "rename":
        first = rng.choice(FIRST_NAMES)
        cur.execute(RENAME_SQL, {"id": user_id, "first_name": first,
                                 "email": f"{first.lower()}.{user_id[:8]}@example.com"})
    else:
        cur.execute(DELETE_SQL, {"id": user_id})
    return op, user_id, cur.rowcount


def record_committed(load, results):
    with load.lock:
        for op, user_id, rows in results:
            if rows <= 0:
                continue
            load.committed += rows
            load.counts[op] += rows
            if op in ("insert", "reinsert"):
                load.live.add(user_id)
                load.deleted.remove(user_id)
                if op == "insert" and len(load.hot) < 64:
                    load.hot.append(user_id)
            elif op == "delete":
                load.live.remove(user_id)
                load.deleted.add(user_id)


def writer(load, number):
    import psycopg

    args = load.args
    rng = random.Random(f"{args.seed}-{number}")
    try:
        conn = psycopg.connect(args.pg_url, autocommit=True, application_name=f"chaos-writer-{number}")
    except Exception as error:  # noqa: BLE001 - reported and fatal
        with load.lock:
            load.error = f"writer {number}: cannot connect to PostgreSQL: {error}"
        return
    with conn:
        while not load.done():
            shape = "single"
            if load.start_long():
                shape = "long"
            elif rng.random() < 0.10:
                shape = "multi"
            size = {"single": 1, "multi": rng.randint(2, 5), "long": rng.randint(2, 8)}[shape]
            # A few short multi-change transactions roll back: none of their changes may show up.
            rollback = shape == "multi" and rng.random() < 0.03
            load.claim(size)
            if load.done():
                break
            results = []
            try:
                if shape == "single":
                    results.append(one_change(conn.cursor(), rng, load, pick_operation(rng, load)))
                else:
                    hold = rng.uniform(2.0, 8.0) if shape == "long" else 0.0
                    opened = time.monotonic()
                    if shape == "long":
                        with load.lock:
                            load.long_open += 1
                    try:
                        with conn.transaction() as tx:
                            cur = conn.cursor()
                            for i in range(size):
                                results.append(one_change(cur, rng, load, pick_operation(rng, load)))
                                # The long transaction has its xid (it wrote) and stays open
                                # while the other writers commit: the cdc watermark must wait.
                                if shape == "long" and i == size // 2 - 1:
                                    time.sleep(hold)
                            if rollback:
                                raise psycopg.Rollback(tx)
                    finally:
                        if shape == "long":
                            with load.lock:
                                load.long_open -= 1
                    open_s = time.monotonic() - opened
                    with load.lock:
                        if rollback:
                            load.rolled_back += 1
                            load.rolled_back_changes += sum(max(0, r) for _, _, r in results)
                        elif shape == "long":
                            load.long += 1
                            load.longest_open_s = max(load.longest_open_s, open_s)
                        else:
                            load.multi += 1
                    if rollback:
                        continue
            except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
                # Multi-row transactions on the hot users lock rows in random order; PostgreSQL
                # breaks the cycle by aborting one, whose changes then never happened.
                with load.lock:
                    load.deadlocks += 1
                continue
            except Exception as error:  # noqa: BLE001 - reported and fatal
                with load.lock:
                    load.error = f"writer {number}: {type(error).__name__}: {error}"
                return
            with load.lock:
                load.transactions += 1
            record_committed(load, results)


def cmd_load(args):
    load = Load(args)
    log(f"load: {args.changes} changes by {args.writers} writers over ~{args.seconds:.0f}s "
        f"(~{load.rate:.0f}/s), ~{args.long_tx} long transactions")
    threads = [threading.Thread(target=writer, args=(load, n), daemon=True)
               for n in range(args.writers)]
    for thread in threads:
        thread.start()
    last_print = time.monotonic()
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        with load.lock:
            committed, error = load.committed, load.error
            long_open, counts = load.long_open, dict(load.counts)
        write_atomically(args.progress, f"{committed}\n")
        if time.monotonic() - last_print >= args.print_every:
            last_print = time.monotonic()
            elapsed = time.monotonic() - load.started
            log(f"load: {committed}/{args.changes} changes ({committed / elapsed:.0f}/s): "
                + ", ".join(f"{k} {v}" for k, v in counts.items())
                + f"; long transactions open {long_open}")
        if error:
            break
    for thread in threads:
        thread.join(timeout=15)
    elapsed = time.monotonic() - load.started
    summary = {
        "changes": load.committed,
        "by_operation": load.counts,
        "transactions": load.transactions,
        "multi_change_transactions": load.multi,
        "long_transactions": load.long,
        "longest_open_s": round(load.longest_open_s, 1),
        "rolled_back_transactions": load.rolled_back,
        "rolled_back_changes": load.rolled_back_changes,
        "deadlocks": load.deadlocks,
        "users_live": len(load.live),
        "seconds": round(elapsed, 1),
        "error": load.error,
    }
    write_atomically(args.progress, f"{load.committed}\n")
    write_atomically(args.summary, json.dumps(summary) + "\n")
    if load.error:
        log(f"load failed: {load.error}")
        return 1
    log(f"load done: {load.committed} changes in {elapsed:.0f}s ("
        + ", ".join(f"{k} {v}" for k, v in load.counts.items())
        + f"); {load.long} long transactions (longest open {load.longest_open_s:.1f}s), "
        f"{load.multi} short multi-change, {load.rolled_back} rolled back "
        f"({load.rolled_back_changes} changes undone), {load.deadlocks} deadlocks retried")
    return 0


def write_atomically(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The pipeline's state
# ---------------------------------------------------------------------------------------------

# The changes the cursor has not passed: the same rule the pruning uses (below the watermark, or
# at or before the last change emitted, is passed). No cursor yet: nothing is passed.
BACKLOG_SQL = """
SELECT count(*) FROM user_changes c
WHERE NOT EXISTS (
    SELECT 1 FROM cdc_cursors k
    WHERE k.consumer = %(name)s
      AND (c.xid < k.watermark
           OR (k.last_xid IS NOT NULL AND (c.xid, c.seq) <= (k.last_xid, k.last_seq))))
"""


def pipeline_state(args):
    """(cdc backlog, quarantined, consumer lag, dead letters); None for what cannot be read."""
    import psycopg

    backlog = quarantined = lag = dead = None
    try:
        with psycopg.connect(args.pg_url, connect_timeout=5) as conn:
            backlog = conn.execute(BACKLOG_SQL, {"name": args.cdc_name}).fetchone()[0]
            quarantined = conn.execute("SELECT count(*) FROM cdc_quarantine WHERE consumer = %s",
                                       (args.cdc_name,)).fetchone()[0]
    except Exception as error:  # noqa: BLE001 - shown as unknown
        log(f"PostgreSQL: {error}")
    try:
        lag, dead = kafka_lag(args.brokers, args.topic, args.group)
    except Exception as error:  # noqa: BLE001 - shown as unknown
        log(f"Kafka: {error}")
    return backlog, quarantined, lag, dead


def kafka_lag(brokers, topic, group):
    """The group's lag on `topic` (end offsets minus committed offsets; a partition without a
    commit counts from its start) and the number of messages on `<topic>.dlq`."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group,
                         "enable.auto.commit": False, "socket.timeout.ms": 10000,
                         "logger": logging.getLogger("kafka-quiet")})
    try:
        lag = 0
        metadata = consumer.list_topics(timeout=10)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            return None, None
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        committed = consumer.committed(partitions, timeout=10)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                        timeout=10)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        dead = 0
        dlq = f"{topic}.dlq"
        if dlq in metadata.topics and metadata.topics[dlq].error is None:
            for p in metadata.topics[dlq].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(dlq, p), timeout=10)
                dead += high - low
        return lag, dead
    finally:
        consumer.close()


def show(value):
    return "?" if value is None else str(value)


def cmd_status(args):
    backlog, quarantined, lag, dead = pipeline_state(args)
    print(f"cdc backlog {show(backlog)}, consumer lag {show(lag)}, dead letters {show(dead)}, "
          f"quarantined {show(quarantined)}", flush=True)
    return 0


def cmd_wait_idle(args):
    """Idle = the cursor passed every change and the group committed every message twice in a
    row: an offset is committed only after its write, so Cassandra has everything then."""
    deadline = time.monotonic() + args.deadline
    started = time.monotonic()
    calm = 0
    last_print = 0.0
    while True:
        backlog, quarantined, lag, dead = pipeline_state(args)
        calm = calm + 1 if backlog == 0 and lag == 0 else 0
        now = time.monotonic()
        if calm >= 2 or now - last_print >= args.print_every:
            last_print = now
            log(f"drain {now - started:4.0f}s: cdc backlog {show(backlog)}, consumer lag "
                f"{show(lag)}, dead letters {show(dead)}, quarantined {show(quarantined)}")
        if calm >= 2:
            log(f"pipeline idle after {now - started:.0f}s")
            return 0
        if now >= deadline:
            log(f"pipeline not idle after {args.deadline:.0f}s (cdc backlog {show(backlog)}, "
                f"consumer lag {show(lag)})")
            return 1
        time.sleep(3)


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------

def cassandra_session(nodes):
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    logging.getLogger("cassandra").setLevel(logging.ERROR)
    host, _, port = nodes.split(",")[0].rpartition(":")
    profile = ExecutionProfile(request_timeout=120, load_balancing_policy=RoundRobinPolicy())
    cluster = Cluster([host], port=int(port), execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=20, protocol_version=5)
    return cluster, cluster.connect()


def expected_first_name(name):
    """The title case of the names the load writes (see FIRST_NAMES)."""
    if name is None:
        return None
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def millis(ts):
    """A timestamp as naive UTC at millisecond precision, as the Cassandra driver returns it."""
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def read_postgres(pg_url):
    import psycopg

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, first_name, nat, registered_at FROM users").fetchall()
    return {uid: (expected_first_name(first), (nat or "").upper(), millis(reg))
            for uid, first, nat, reg in rows}


def read_cassandra(session, keyspace):
    from cassandra.query import SimpleStatement

    def scan(cql):
        return session.execute(SimpleStatement(cql, fetch_size=5000))

    by_id = {row.user_id: (row.first_name, row.country_code, millis(row.registered_at))
             for row in scan(f"SELECT user_id, first_name, country_code, registered_at "
                             f"FROM {keyspace}.users_by_id")}
    by_country = {}
    for row in scan(f"SELECT country_code, registered_at, user_id FROM {keyspace}.users_by_country"):
        by_country.setdefault(row.user_id, []).append((row.country_code, millis(row.registered_at)))
    return by_id, by_country


def compare(pg, by_id, by_country):
    """Rows missing, stale (an old version or an old position) and extra (a user that does not
    exist), per table, each with (user id, what PostgreSQL says, what Cassandra has)."""
    found = {key: [] for key in ("missing_by_id", "stale_by_id", "extra_by_id",
                                 "missing_by_country", "stale_by_country", "extra_by_country")}
    for uid, (first, cc, reg) in pg.items():
        want = (first, cc, reg)
        have = by_id.get(uid)
        if have is None:
            found["missing_by_id"].append((uid, want, None))
        elif have != want:
            found["stale_by_id"].append((uid, want, have))
        positions = by_country.get(uid, [])
        if (cc, reg) not in positions:
            found["missing_by_country"].append((uid, (cc, reg), positions))
        for position in positions:
            if position != (cc, reg):
                found["stale_by_country"].append((uid, (cc, reg), position))
    for uid, have in by_id.items():
        if uid not in pg:
            found["extra_by_id"].append((uid, None, have))
    for uid, positions in by_country.items():
        if uid not in pg:
            for position in positions:
                found["extra_by_country"].append((uid, None, position))
    return found


def fmt_row(value):
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt_row(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(fmt_row(v) for v in value) + "]"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(value)


def read_topic(brokers, topic, seconds, group=None, on_partitions=None):
    """Every message of `topic` from its start to its current end, without committing (a group
    of its own unless `group` is given); `on_partitions(consumer, partitions)` runs first. Stops
    after `seconds` at the latest."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": brokers,
                         "group.id": group or f"chaos-read-{uuid.uuid4()}",
                         "enable.auto.commit": False, "logger": logging.getLogger("kafka-quiet")})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            return
        partitions = sorted(metadata.topics[topic].partitions)
        if on_partitions:
            on_partitions(consumer, partitions)
        ends, assignment = {}, []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        if not assignment:
            return
        consumer.assign(assignment)
        deadline = time.monotonic() + seconds
        while ends and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            yield message
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
    finally:
        consumer.close()


def dead_letter_kinds(brokers, topic):
    """error_kind header → count, over the dead-letter topic."""
    kinds = {}
    for message in read_topic(brokers, f"{topic}.dlq", 30):
        headers = dict(message.headers() or [])
        kind = (headers.get("error_kind") or b"?").decode(errors="replace")
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def trace_users(args, user_ids):
    """Where each user's newest change went, to tell a change that never reached the topic (cdc)
    from one the processors passed: the user's newest source time in PostgreSQL, every message
    of the topic and of its dead-letter topic keyed by it, and the group's committed offset of
    each partition it is on."""
    import psycopg
    from confluent_kafka import TopicPartition

    wanted = {uid.encode(): uid for uid in user_ids}
    with psycopg.connect(args.pg_url) as conn:
        clock = dict(conn.execute("SELECT user_id, last_ts FROM user_change_clock "
                                  "WHERE user_id = ANY(%s)", (list(user_ids),)).fetchall())
    committed = {}

    def read_committed(consumer, partitions):
        for tp in consumer.committed([TopicPartition(args.topic, p) for p in partitions],
                                     timeout=10):
            committed[tp.partition] = tp.offset

    messages = {uid: [] for uid in user_ids}
    for topic, group, on_partitions in ((args.topic, args.group, read_committed),
                                        (f"{args.topic}.dlq", None, None)):
        for message in read_topic(args.brokers, topic, 120, group, on_partitions):
            uid = wanted.get(message.key())
            if uid is not None:
                headers = {k: (v or b"").decode(errors="replace")
                           for k, v in (message.headers() or [])}
                messages[uid].append((topic, message.partition(), message.offset(), headers))
    for uid in user_ids:
        newest = clock.get(uid)
        log(f"  trace {uid}: newest change in PostgreSQL at "
            f"{newest.isoformat() if newest else '?'} ({micros(newest)} us)")
        if not messages[uid]:
            log("      no message on the topic or its dead-letter topic")
        for topic, partition, offset, headers in messages[uid]:
            where = "committed" if offset < committed.get(partition, -1) else "NOT committed"
            if topic != args.topic:
                where = f"dead letter {headers.get('error_kind', '?')}: " \
                        f"{headers.get('error_message', '')}"
            log(f"      {topic}[{partition}]@{offset} op {headers.get('op', '?')} "
                f"source_ts_us {headers.get('source_ts_us', '?')} "
                f"before {headers.get('before_country', '-')}; {where} "
                f"(group at {committed.get(partition, '?')})")


def micros(ts):
    if ts is None:
        return "?"
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def cmd_verify(args):
    pg = read_postgres(args.pg_url)
    cluster, session = cassandra_session(args.cassandra)
    try:
        by_id, by_country = read_cassandra(session, args.keyspace)
        found = compare(pg, by_id, by_country)
        missing = len(found["missing_by_id"]) + len(found["missing_by_country"])
        stale = len(found["stale_by_id"]) + len(found["stale_by_country"])
        extra = len(found["extra_by_id"]) + len(found["extra_by_country"])
        rows_by_country = sum(len(v) for v in by_country.values())
        log(f"compared {len(pg)} users in PostgreSQL with {len(by_id)} rows of users_by_id and "
            f"{rows_by_country} of users_by_country")
        for key, items in found.items():
            log(f"  {key:<19} {len(items)}")
            for uid, want, have in items[:args.examples]:
                log(f"      {uid}: PostgreSQL {fmt_row(want)}, Cassandra {fmt_row(have)}")
    finally:
        cluster.shutdown()
    try:
        kinds = dead_letter_kinds(args.brokers, args.topic)
    except Exception as error:  # noqa: BLE001 - reported, the comparison stands
        kinds = {f"unreadable: {error}": 1}
    dead = sum(kinds.values())
    log(f"dead letters: {dead}" + (f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})"
                                   if kinds else ""))
    result = {"users": len(pg), "missing": missing, "stale": stale, "extra": extra,
              "dead_letters": dead, **{k: len(v) for k, v in found.items()}}
    if args.result:
        write_atomically(args.result, json.dumps(result) + "\n")
    log(f"missing {missing}, stale {stale}, extra {extra}")
    if missing or stale or extra:
        traced = list(dict.fromkeys(uid for items in found.values() for uid, _, _ in items))
        try:
            trace_users(args, traced[:args.examples * 2])
        except Exception as error:  # noqa: BLE001 - reported, the comparison stands
            log(f"cannot trace the users that differ: {error}")
    return 0 if missing == stale == extra == 0 else 1


# ---------------------------------------------------------------------------------------------
# Clean-up
# ---------------------------------------------------------------------------------------------

def cmd_cleanup(args):
    failures = 0
    try:
        cluster, session = cassandra_session(args.cassandra)
        try:
            session.execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}", timeout=120)
            log(f"dropped keyspace {args.keyspace}")
        finally:
            cluster.shutdown()
    except Exception as error:  # noqa: BLE001 - reported, the rest still cleaned
        log(f"cannot drop keyspace {args.keyspace}: {error}")
        failures += 1
    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": args.brokers,
                             "logger": logging.getLogger("kafka-quiet")})
        topics = [args.topic, f"{args.topic}.dlq"]
        existing = admin.list_topics(timeout=10).topics
        doomed = [t for t in topics if t in existing]
        if doomed:
            for topic, future in admin.delete_topics(doomed, operation_timeout=30).items():
                future.result(timeout=60)
                log(f"deleted topic {topic}")
    except Exception as error:  # noqa: BLE001 - reported, the rest still cleaned
        log(f"cannot delete the topics of {args.topic}: {error}")
        failures += 1
    if args.registry:
        subject = f"{args.topic}-value"
        request = urllib.request.Request(f"{args.registry}/subjects/{subject}", method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=10).read()
            log(f"soft-deleted registry subject {subject}")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                log(f"cannot delete registry subject {subject}: HTTP {error.code}")
                failures += 1
        except Exception as error:  # noqa: BLE001 - reported
            log(f"cannot delete registry subject {subject}: {error}")
            failures += 1
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    load = sub.add_parser("load")
    load.add_argument("--pg-url", required=True)
    load.add_argument("--changes", type=int, required=True)
    load.add_argument("--writers", type=int, default=32)
    load.add_argument("--seconds", type=float, required=True,
                      help="spread the changes over about this long (0: as fast as possible)")
    load.add_argument("--long-tx", type=int, default=10, help="long transactions, about")
    load.add_argument("--seed", default="chaos")
    load.add_argument("--progress", required=True, help="file: committed changes so far")
    load.add_argument("--summary", required=True, help="file: the load's figures, JSON")
    load.add_argument("--print-every", type=float, default=10)

    for name in ("status", "wait-idle"):
        p = sub.add_parser(name)
        p.add_argument("--pg-url", required=True)
        p.add_argument("--cdc-name", required=True)
        p.add_argument("--brokers", required=True)
        p.add_argument("--topic", required=True)
        p.add_argument("--group", required=True)
        if name == "wait-idle":
            p.add_argument("--deadline", type=float, default=300)
            p.add_argument("--print-every", type=float, default=10)

    verify = sub.add_parser("verify")
    verify.add_argument("--pg-url", required=True)
    verify.add_argument("--cassandra", required=True, help="host:port")
    verify.add_argument("--keyspace", required=True)
    verify.add_argument("--brokers", required=True)
    verify.add_argument("--topic", required=True)
    verify.add_argument("--group", required=True, help="the processors' consumer group")
    verify.add_argument("--examples", type=int, default=5)
    verify.add_argument("--result", help="file: the counts, JSON")

    cleanup = sub.add_parser("cleanup")
    cleanup.add_argument("--cassandra", required=True)
    cleanup.add_argument("--keyspace", required=True)
    cleanup.add_argument("--brokers", required=True)
    cleanup.add_argument("--topic", required=True)
    cleanup.add_argument("--registry")

    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="chaos: %(name)s: %(message)s")
    logging.getLogger("kafka-quiet").setLevel(logging.CRITICAL)
    handler = {"load": cmd_load, "status": cmd_status, "wait-idle": cmd_wait_idle,
               "verify": cmd_verify, "cleanup": cmd_cleanup}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
