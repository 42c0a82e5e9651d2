// `descent study`: tunes every variant (an optimizer) at every global batch size under one budget and measures
// the steps, epochs, examples and seconds each trial needs to reach a target. The trials of a batch size train as
// replicas on one data stream in one launch; a study run again skips the trials it has already measured.
import Collectives
import Config
import Foundation
import Numerics
import Optimizers
import Training

public final class Study {
    public let config: StudyConfig
    public let communicator: Communicator
    /// `<output.dir>/<name>/` (every rank knows it; rank 0 writes).
    public let directory: String
    let console: Console
    /// Training-set samples (a `full` batch, epochs, the budget in steps).
    let trainCount: Int
    /// At most this many trials train together as replicas.
    let together: Int
    /// Named points where a test acts on the trials (fault injection).
    let hooks: TrainingHooks?
    /// Train only the groups of these batch sizes (a part of the study, as one Slurm array task runs it).
    let only: [RunConfig.Batch]?

    /// One variant at one batch size: its trials share a search range and train together.
    public struct Group: Sendable {
        public var variant: StudyConfig.Variant
        public var batch: RunConfig.Batch
        /// "momentum, batch 128"; the folder is "momentum-batch-128".
        public var label: String { "\(variant.label), batch \(batch)" }
        public var folder: String { RunConfig.folderName("\(variant.label) batch \(batch)") }
    }

    /// One trial: its point of the search, label and the config it trains (which its run folder holds).
    struct Trial {
        var index: Int
        var point: SearchPlan.Point
        var label: String
        /// "trial", or "widen" for the points of a widened search.
        var prefix: String
        var config: RunConfig
        /// The fingerprint of everything that decides its result: its config, the target and the cadence.
        var hash: String
        /// The values of `study.search_space`'s keys: "optimizer.weight_decay=0.0001 schedule.warmup=40".
        var searched: String
    }

    /// Creates the study folder on rank 0, or continues in one that holds the same study; checks the batch sizes
    /// against the training set. Every failure is collective and comes before anything is written.
    /// The study in `config`'s folder with `n` more trials per group: the folder's config.yaml must be `config` but
    /// for its trial count; trials already measured are reused (with the quasirandom search, the first trials of a
    /// longer sequence are the same points). The folder's config.yaml then records the new count.
    public static func extending(_ config: StudyConfig, by n: Int, on communicator: Communicator) throws -> StudyConfig {
        let saved = config.base.outputDirectory + "/" + config.base.name + "/config.yaml"
        let trials = try communicator.collectively { () throws -> Int in
            guard communicator.rank == 0 else { return 0 }
            guard let text = try? String(contentsOfFile: saved, encoding: .utf8) else {
                throw OutputError(path: saved, reason: "--add-trials extends a study, and there is none here yet (run the study first)")
            }
            let old = try StudyConfig.load(yaml: text, fileName: saved)
            var same = config
            same.trials = old.trials
            guard same == old else {
                throw OutputError(path: saved, reason: "--add-trials extends the same study, and this folder holds another "
                                  + "(its config.yaml differs in more than study.trials)")
            }
            guard old.trials + n <= 1000 else {
                throw OutputError(path: saved, reason: "--add-trials \(n) would make \(old.trials + n) trials per group (at most 1000)")
            }
            return old.trials
        }
        var extended = config
        extended.trials = Int(try communicator.broadcast(text: "\(trials)"))! + n
        return extended
    }

    public init(config: StudyConfig, communicator: Communicator, overwrite: Bool = false, together: Int = 64,
                only: [RunConfig.Batch]? = nil, extending: Bool = false, console: Console, hooks: TrainingHooks? = nil) throws {
        (self.config, self.hooks, self.only) = (config, hooks, only)
        (self.communicator, self.console, self.together) = (communicator, console, together)
        directory = config.base.outputDirectory + "/" + config.base.name
        trainCount = try communicator.collectively { try Trainer.trainingSetCount(config.base) }
        for b in config.batches {
            guard case .samples(let n) = b else { continue }
            guard n <= trainCount, n >= communicator.size else {
                throw AgreedFailure(description: ConfigError(
                    source: config.base.origin.of("study.batches"), key: "study.batches",
                    expected: "batch sizes from \(communicator.size) (one sample per rank) to the training set's \(trainCount) "
                        + "samples (full: the whole set)", found: "\(n)").description)
            }
        }
        for b in only ?? [] where !config.batches.contains(b) {
            throw AgreedFailure(description: "--batch: expected one of the study's batch sizes ("
                                + config.batches.map(\.description).joined(separator: ", ") + "), found \(b)")
        }
        let directory = directory, resolved = config.resolvedYAML
        try communicator.collectively {
            guard communicator.rank == 0 else { return }
            let saved = directory + "/config.yaml"
            if overwrite { try Trainer.createRunDirectory(directory, overwrite: true) }
            if let old = try? String(contentsOfFile: saved, encoding: .utf8), !extending {
                guard old == resolved else {
                    throw OutputError(path: directory, reason: "the folder holds another study (its config.yaml differs); "
                                      + "pass --overwrite to replace it, or choose another name with --set name=...")
                }
                return
            }
            // Parts of one study may start together: each creates the folder if need be and writes the same config.
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw OutputError(path: directory, reason: error.localizedDescription)
            }
            try writeAtomically(resolved, to: saved)
        }
    }

    /// The groups in the order they run: variant by variant, each over the batch sizes.
    public var groups: [Group] {
        config.variants.flatMap { v in config.batches.map { Group(variant: v, batch: $0) } }
    }

    /// Runs every trial not yet measured (of the batch sizes in `only`, when given), rewriting the record after each
    /// launch of trials, then writes the report (not for a part: `report()` gathers the parts). Returns every
    /// trial's record in plan order (on rank 0; other ranks hold what they computed).
    @discardableResult
    public func run() throws -> [TrialRecord] {
        var records = try sharedRecords()
        var ranges = try sharedRanges()
        for group in groups where inPart(group.batch) {
            let range = try group.variant.rates ?? ranges[group.folder] ?? {
                let r = try rangeTest(group)
                ranges[group.folder] = r
                try save(ranges)
                return r
            }()
            var trials = try self.trials(group, range: range)
            let pending = trials.filter { records[$0.hash] == nil }
            if pending.isEmpty && !config.widen && config.rerunSeeds == 0 {
                console.note("== \(group.label): \(trials.count) trials measured before")
                continue
            }
            try train(pending, of: group, into: &records)
            if config.widen, let (edge, wider) = widening(group, range: range, trials.compactMap { records[$0.hash] }) {
                // One more search beyond the edge; a point it shares with the first search is that trial, measured.
                let more = try self.trials(group, range: wider, first: config.trials, prefix: "widen")
                console.note("== \(group.label): the best rate is the \(edge)est tried; searching [\(shortNumber(wider.low)), "
                             + "\(shortNumber(wider.high))] too")
                try train(more.filter { records[$0.hash] == nil }, of: group, into: &records)
                trials += more
            }
            if config.rerunSeeds > 0 {
                let seeds = try rerun(group, trials, records)
                if let first = seeds.first {
                    console.note("== \(group.label): the best point, lr \(shortNumber(first.point.learningRate)), again at \(seeds.count) seeds")
                }
                try train(seeds.filter { records[$0.hash] == nil }, of: group, into: &records)
                trials += seeds.dropFirst()
            }
            console.note(Self.groupLine(group, trials.compactMap { records[$0.hash] }, target: config.target,
                                        choosingSeed: config.choosingSeed))
        }
        try save(records)
        if only == nil, communicator.rank == 0 {
            try StudyReport(study: self, records: ordered(records), ranges: ranges).write()
        }
        return ordered(records)
    }

    /// Gathers what every part measured into `study.csv` and writes the report, training nothing.
    public func report() throws {
        let records = try sharedRecords()
        try save(records)
        if communicator.rank == 0 {
            try StudyReport(study: self, records: ordered(records), ranges: try sharedRanges()).write()
        }
    }

    /// The records in plan order: group by group, trial by trial (records of groups no longer planned last).
    func ordered(_ records: [String: TrialRecord]) -> [TrialRecord] {
        let folders = groups.map(\.folder)
        func place(_ r: TrialRecord) -> Int { folders.firstIndex { r.folder.hasPrefix($0 + "/") } ?? folders.count }
        return records.values.sorted { (place($0), $0.folder, $0.trial) < (place($1), $1.folder, $1.trial) }
    }

    // MARK: trials

    /// The group's trials: the search's points in `range`, each a config of the group's batch and budget, numbered
    /// from `first` + 1; with seeds, every point is a trial per seed (each its own launch: a seed draws the data
    /// order too).
    func trials(_ group: Group, range: SearchRange, first: Int = 0, prefix: String = "trial") throws -> [Trial] {
        let points = SearchPlan.points(config.search, count: config.trials, rates: range, momentum: group.variant.momentum,
                                       space: config.space, seed: config.base.seed)
        let seeds = config.base.seeds
        return try points.enumerated().flatMap { k, p in
            try (seeds.isEmpty ? [nil] : seeds.map { Optional($0) }).map { try trial(group, p, index: first + k, prefix: prefix, seed: $0) }
        }
    }

    /// One point of the group's search as a trial: its label, config and fingerprint; `seed` (when given) replaces
    /// the config's. A trial of the study's own seed is the same trial as the one without a seed (its hash).
    func trial(_ group: Group, _ p: SearchPlan.Point, index: Int, prefix: String, seed: UInt64?) throws -> Trial {
        var settings = group.variant.optimizer
        settings.learningRate = p.learningRate
        let width = String(config.trials).count, number = String(index + 1)
        var label = "\(prefix) \(String(repeating: "0", count: max(0, width - number.count)))\(number) lr \(shortNumber(p.learningRate))"
        if let m = p.momentum {
            if settings.kind.keys.contains("betas") { settings.beta1 = m } else { settings.momentum = m }
            label += " momentum \(shortNumber(m))"
        }
        var c = groupConfig(group)
        c.optimizer = settings
        if let seed { (c.seed, c.seeds) = (seed, []) }
        for (d, value) in zip(config.space, p.values) {
            c = try d.apply(value, to: c)
            label += " \(d.key.split(separator: ".").last!) \(shortNumber(value))"
        }
        if let seed { label += " seed \(seed)" }
        c.name = RunConfig.folderName(label)
        // Neither where the study is written nor the trial's name is part of what it computes.
        var located = c
        (located.outputDirectory, located.name) = (".", "trial")
        var identity = located.completeYAML + "target: \(config.target.text), evaluated with ratio \(config.target.ratio)\n"
        if config.prune { identity += "pruned by successive halving from step \(config.pruneFrom), 1/\(config.pruneReduction) kept\n" }
        let searched = zip(config.space, p.values).map { "\($0.key)=\(shortNumber($1))" }.joined(separator: " ")
        return Trial(index: index, point: p, label: label, prefix: prefix, config: c,
                     hash: hexDigest(fingerprint(bytesOf: Array(identity.utf8))), searched: searched)
    }

    /// DeepOBS's rerun: the group's best trial at the study's seed (by the objective), trained again at
    /// `rerun_seeds` seeds from the study's on (the first is that trial itself).
    func rerun(_ group: Group, _ trials: [Trial], _ records: [String: TrialRecord]) throws -> [Trial] {
        let measured = trials.compactMap { records[$0.hash] }
        guard let best = StudyReport.best(of: measured, metric: config.target.metric),
              let trial = trials.first(where: { $0.hash == best.hash }) else { return [] }
        return try (0..<UInt64(config.rerunSeeds)).map { k in
            try self.trial(group, trial.point, index: trial.index, prefix: trial.prefix, seed: config.base.seed &+ k)
        }
    }

    /// When the group's best trial has the lowest or highest rate tried, that edge and the range beyond it: as wide
    /// (in log) as the range searched, ending at the edge.
    func widening(_ group: Group, range: SearchRange, _ measured: [TrialRecord]) -> (edge: String, range: SearchRange)? {
        guard measured.count >= 2, let best = StudyReport.best(of: measured, metric: config.target.metric) else { return nil }
        let rates = measured.map(\.learningRate), ratio = range.high / range.low
        guard ratio > 1 else { return nil }
        if best.learningRate == rates.min() { return ("low", SearchRange(SearchPlan.rounded(range.low / ratio), range.low)) }
        if best.learningRate == rates.max() { return ("high", SearchRange(range.high, SearchPlan.rounded(range.high * ratio))) }
        return nil
    }

    /// The config a group's trials share: the batch, the budget in steps, no training-set pass at epoch ends
    /// (the target says what is evaluated), written into `<study>/<group>/`.
    func groupConfig(_ group: Group) -> RunConfig {
        var c = config.base
        c.training.batch = group.batch
        c.training.steps = budget(group.batch)
        // With a final objective the epoch ends measure the training set when the metric or the config asks (the
        // generalisation gap); a target's evaluations measure what the target needs.
        c.training.evaluateTrainingSet = config.target.final && (config.target.metric.onTrainingSet || config.base.training.evaluateTrainingSet)
        c.name = group.folder
        c.outputDirectory = directory
        return c
    }

    /// The steps a trial may take: `max_steps`, or `max_epochs` passes over the data, whichever is fewer.
    func budget(_ batch: RunConfig.Batch) -> Int {
        let b = samples(batch)
        return min(config.maxSteps, config.maxEpochs * ((trainCount + b - 1) / b))
    }

    /// The global batch in samples.
    func samples(_ batch: RunConfig.Batch) -> Int {
        if case .samples(let n) = batch { return min(n, trainCount) }
        return trainCount
    }

    /// The one line of a finished group: how many trials reached the target, the fastest, and how many diverged; with a
    /// final objective, the best final value among the trials at `choosingSeed` (`StudyConfig.choosingSeed`: the reruns
    /// at the other seeds measure that choice's spread and do not compete).
    static func groupLine(_ group: Group, _ records: [TrialRecord], target: Target, choosingSeed: UInt64?) -> String {
        let reached = records.filter(\.reached), diverged = records.filter(\.diverged).count, pruned = records.filter(\.pruned).count
        let candidates = choosingSeed.map { seed in records.filter { $0.seed == seed } } ?? records
        if target.final, let best = StudyReport.best(of: candidates, metric: target.metric), let value = best.final(target.metric) {
            return "== \(group.label): done, \(records.count) trials; the best final \(target.metric.rawValue)"
                + (choosingSeed.map { " at seed \($0)" } ?? "") + " is \(fixed(value, 4)) (lr \(shortNumber(best.learningRate)))"
                + (diverged > 0 ? ", \(diverged) diverged" : "")
        }
        let fastest = reached.min { ($0.steps ?? .max) < ($1.steps ?? .max) }
        return "== \(group.label): done, \(reached.count) of \(records.count) trials reached \(target.text)"
            + (fastest.map { " (fastest: lr \(shortNumber($0.learningRate)), \($0.steps ?? 0) steps)" } ?? "")
            + (diverged > 0 ? ", \(diverged) diverged" : "") + (pruned > 0 ? ", \(pruned) pruned" : "")
    }

    /// Trains `pending` trials of `group`, at most `together` at a time, saving the records after each launch.
    func train(_ pending: [Trial], of group: Group, into records: inout [String: TrialRecord]) throws {
        // Trials that differ only in their optimizer train together as replicas; a searched key outside the
        // optimizer gives a trial a config of its own.
        var sets: [[Trial]] = []
        for t in pending {
            var shared = t.config
            (shared.optimizer, shared.name) = (group.variant.optimizer, "")
            if let k = sets.firstIndex(where: { var c = $0[0].config; (c.optimizer, c.name) = (group.variant.optimizer, ""); return c == shared }) {
                sets[k].append(t)
            } else {
                sets.append([t])
            }
        }
        for set in sets {
            for start in stride(from: 0, to: set.count, by: together) {
                let launch = Array(set[start..<min(start + together, set.count)])
                for r in try train(launch, of: group) { records[r.hash] = r }
                try save(records)
            }
        }
    }

    /// Trains `trials` of `group` together, one replica each, and returns their records.
    func train(_ trials: [Trial], of group: Group) throws -> [TrialRecord] {
        console.note("== \(group.label): \(trials.count) trial\(trials.count == 1 ? "" : "s") (lr "
                     + trials.map { shortNumber($0.point.learningRate) }.joined(separator: ", ") + "), at most \(budget(group.batch)) steps, "
                     + "target \(config.target.text)")
        var shared = trials[0].config
        (shared.name, shared.optimizer) = (group.folder, groupConfig(group).optimizer)
        let trainer = try Trainer(RunInputs.load(shared, on: communicator, hooks: hooks),
                                  replicas: trials.map { ReplicaPlan(label: $0.label, settings: $0.config.optimizer) },
                                  output: communicator.rank == 0 ? .folder(overwrite: true, checkpoints: false) : .none,
                                  options: TrainerOptions(console: console, rows: 100, goal: config.target,
                                                          pruner: config.prune ? Pruner(first: config.pruneFrom, reduction: config.pruneReduction,
                                                                                        budget: budget(group.batch)) : nil))
        try console.quietly { _ = try trainer.run() }
        return zip(trials, trainer.replicas).map { trial, replica in
            TrialRecord(trial: trial, group: group, replica: replica, trainCount: trainCount)
        }
    }

    // MARK: the learning-rate range test

    /// Smith's learning-rate range test at the group's batch: one run whose rate grows geometrically from
    /// `range_test[0]` to `range_test[1]` over `range_test[2]` steps, until the loss runs away. The range is one
    /// decade either side of the rate at the smoothed loss's minimum.
    func rangeTest(_ group: Group) throws -> SearchRange {
        let test = config.rangeTest
        var c = groupConfig(group)
        c.name = RunConfig.folderName("lr range test \(group.folder)")
        c.optimizer = group.variant.optimizer
        c.optimizer.learningRate = test.from
        c.training.steps = test.steps
        c.training.logEvery = 1
        (c.schedule.batchScaling, c.schedule.referenceBatch) = (.none, nil)
        c.schedule.rate = LearningRateSchedule(kind: .exponential)
        c.schedule.rate.gamma = pow(test.to / test.from, 1 / Double(test.steps - 1))
        (c.guards.divergence, c.guards.divergenceSteps, c.guards.nonFinite) = (4, 3, .stop)
        console.note("== \(group.label): learning-rate range test, \(shortNumber(test.from)) to \(shortNumber(test.to)) "
                     + "over \(test.steps) steps")
        let trainer = try Trainer(RunInputs.load(c, on: communicator),
                                  output: communicator.rank == 0 ? .folder(overwrite: true, checkpoints: false) : .none,
                                  options: TrainerOptions(console: console))
        do { try console.quietly { _ = try trainer.run() } } catch is GuardFailure {
            // The loss ran away: that is where the test ends.
        }
        var text = ""
        if communicator.rank == 0 {
            let r = Self.rangeFromTest(trainer.history.filter { $0.kind == .step }.compactMap { row in
                row.batchLoss.map { (row.learningRate, $0) }
            }, floor: test.from)
            text = "\(r.low) \(r.high)"
        }
        let parts = try communicator.broadcast(text: text).split(separator: " ").compactMap { Double($0) }
        let range = SearchRange(parts[0], parts[1])
        console.note("\(group.label): the range test's smoothed loss is lowest near lr \(shortNumber(SearchPlan.rounded((range.low * range.high).squareRoot()))); "
                     + "searching [\(shortNumber(range.low)), \(shortNumber(range.high))]")
        return range
    }

    /// The range from a test's (rate, batch loss) steps: the loss smoothed by an exponential average (β 0.9,
    /// bias-corrected), and one decade either side of the rate at its minimum (not below `floor`). The loss lags
    /// the growing rate, so the best constant rate often lies at or above that minimum's: the search straddles it.
    public static func rangeFromTest(_ steps: [(rate: Double, loss: Double)], floor: Double) -> SearchRange {
        var average = 0.0, best = (rate: floor * 10, loss: Double.infinity)
        for (k, s) in steps.enumerated() where s.loss.isFinite {
            average = 0.9 * average + 0.1 * s.loss
            let smoothed = average / (1 - pow(0.9, Double(k + 1)))
            if smoothed < best.loss { best = (s.rate, smoothed) }
        }
        return SearchRange(max(floor, SearchPlan.rounded(best.rate / 10)), SearchPlan.rounded(best.rate * 10))
    }

    // MARK: files

    /// The files this launch writes its records and ranges into: the study's own, or a part's (one per set of
    /// batch sizes, so that parts running at the same time never write the same file).
    /// Whether this launch trains the batch size `batch` (every one, unless it is a part).
    func inPart(_ batch: RunConfig.Batch) -> Bool { only?.contains(batch) ?? true }
    var partName: String? { only.map { "batch-" + $0.map(\.description).joined(separator: "-") } }
    var recordsFile: String { partName.map { "parts/study-\($0).csv" } ?? "study.csv" }
    var rangesFile: String { partName.map { "parts/ranges-\($0).csv" } ?? "ranges.csv" }

    /// `study.csv` and every part's records, as rank 0 reads them, on every rank.
    func sharedRecords() throws -> [String: TrialRecord] {
        var merged: [String: TrialRecord] = [:]
        for text in try shared(files: ["study.csv"] + partFiles(prefix: "study-")) { merged.merge(TrialRecord.parse(text)) { a, _ in a } }
        return merged
    }

    /// `ranges.csv` and every part's ranges, as rank 0 reads them, on every rank.
    func sharedRanges() throws -> [String: SearchRange] {
        var merged: [String: SearchRange] = [:]
        for text in try shared(files: ["ranges.csv"] + partFiles(prefix: "ranges-")) { merged.merge(Self.parseRanges(text)) { a, _ in a } }
        return merged
    }

    /// The part files with this prefix (rank 0 looks; other ranks get an empty list, which `shared` ignores).
    func partFiles(prefix: String) -> [String] {
        guard communicator.rank == 0 else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/parts")) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".csv") }.sorted().map { "parts/" + $0 }
    }

    /// The texts of files of the study folder as rank 0 reads them (those that exist), on every rank.
    func shared(files: [String]) throws -> [String] {
        let texts = communicator.rank == 0 ? files.compactMap { try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8) } : []
        let count = Int(try communicator.broadcast(text: "\(texts.count)"))!
        return try (0..<count).map { try communicator.broadcast(text: communicator.rank == 0 ? texts[$0] : "") }
    }

    /// This launch's records (all of them, or its part's), rewritten whole and atomically by rank 0.
    func save(_ records: [String: TrialRecord]) throws {
        guard communicator.rank == 0 else { return }
        let mine = ordered(records).filter { r in only == nil || RunConfig.Batch(r.batch).map(inPart) == true }
        try makeParts()
        try writeAtomically(TrialRecord.csv(mine), to: directory + "/" + recordsFile)
    }

    func save(_ ranges: [String: SearchRange]) throws {
        guard communicator.rank == 0 else { return }
        let mine = ranges.keys.sorted().filter { key in only == nil || groups.contains { $0.folder == key && inPart($0.batch) } }
        let lines = ["group,lr_low,lr_high"] + mine.map { "\(csvField($0)),\(ranges[$0]!.low),\(ranges[$0]!.high)" }
        try makeParts()
        try writeAtomically(lines.joined(separator: "\n") + "\n", to: directory + "/" + rangesFile)
    }

    private func makeParts() throws {
        guard partName != nil else { return }
        try FileManager.default.createDirectory(atPath: directory + "/parts", withIntermediateDirectories: true)
    }

    public static func parseRanges(_ text: String) -> [String: SearchRange] {
        var ranges: [String: SearchRange] = [:]
        for row in csvRows(text).dropFirst() where row.count == 3 {
            if let low = Double(row[1]), let high = Double(row[2]) { ranges[row[0]] = SearchRange(low, high) }
        }
        return ranges
    }
}
