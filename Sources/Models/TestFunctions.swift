// The classic 2-D test functions of optimizer pictures, with analytic gradients, known minima, a classic start
// point and a plotting window each. They are evaluated in Double; the optimizers see Float parameters.
import Foundation

/// A 2-D function f(x, y) to minimise.
public enum TestFunction: String, CaseIterable, Sendable {
    /// f = x²/20 + y² — the elongated bowl of 'Deep Learning from Scratch' ch. 6. Minimum 0 at (0, 0);
    /// start (−7, 2); window ±10.
    case bowl
    /// f = (1 − x)² + 100 (y − x²)² — Rosenbrock (1960), a = 1, b = 100: a curved, flat-bottomed valley.
    /// Minimum 0 at (1, 1); start (−1.2, 1).
    case rosenbrock
    /// f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)² — Beale (1958). Minimum 0 at (3, 0.5);
    /// start (1, 1.5); window ±4.5.
    case beale
    /// f = x² − y² — a saddle point at (0, 0), unbounded below along y. Start (−1.5, 0.001): almost on the ridge.
    case saddle
    /// f = 0.1 (√(1 + x²) − 1) + 5 y² — a long valley: steep walls (curvature 10 across) and a floor that slopes
    /// gently (gradient ≤ 0.1 along it) down to the minimum 0 at (0, 0). Start (−9, 1.5).
    case longValley = "long-valley"
    /// f = (x² + y − 11)² + (x + y² − 7)² — Himmelblau (1972): four minima, all 0. Start (−0.27, −0.93), beside
    /// the local maximum at (−0.2708, −0.9230), where small differences pick different minima.
    case himmelblau
    /// f = 20 + x² − 10 cos 2πx + y² − 10 cos 2πy — Rastrigin (A = 10): a bowl covered in local minima.
    /// Global minimum 0 at (0, 0); start (2.2, 2.7); window ±5.12.
    case rastrigin
    /// f = x² + y² — the isotropic bowl: the gradient points at the minimum 0 at (0, 0) from everywhere.
    /// Start (−7, 2); window ±10.
    case sphere
    /// f = (x² − 1)² + 0.3 x + y² — a tilted double well: a deep minimum near (−1.036, 0) (f ≈ −0.305) and a
    /// shallow one near (0.960, 0) (f ≈ 0.294), a ridge at x ≈ 0.075 (f ≈ 1.01) between them. Start (2, 1).
    case doubleWell = "double-well"

    /// The formula as people write it.
    public var formula: String {
        switch self {
        case .bowl: return "x²/20 + y²"
        case .rosenbrock: return "(1 − x)² + 100 (y − x²)²"
        case .beale: return "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²"
        case .saddle: return "x² − y²"
        case .longValley: return "0.1 (√(1 + x²) − 1) + 5 y²"
        case .himmelblau: return "(x² + y − 11)² + (x + y² − 7)²"
        case .rastrigin: return "20 + x² − 10 cos 2πx + y² − 10 cos 2πy"
        case .sphere: return "x² + y²"
        case .doubleWell: return "(x² − 1)² + 0.3 x + y²"
        }
    }

    /// A short display name ("Rosenbrock").
    public var title: String {
        switch self {
        case .bowl: return "x²/20 + y²"
        case .rosenbrock: return "Rosenbrock"
        case .beale: return "Beale"
        case .saddle: return "Saddle x² − y²"
        case .longValley: return "Long valley"
        case .himmelblau: return "Himmelblau"
        case .rastrigin: return "Rastrigin"
        case .sphere: return "x² + y²"
        case .doubleWell: return "Tilted double well"
        }
    }

    public func value(_ x: Double, _ y: Double) -> Double {
        switch self {
        case .bowl: return x * x / 20 + y * y
        case .rosenbrock: return (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x)
        case .beale:
            let a = 1.5 - x + x * y, b = 2.25 - x + x * y * y, c = 2.625 - x + x * y * y * y
            return a * a + b * b + c * c
        case .saddle: return x * x - y * y
        case .longValley: return 0.1 * ((1 + x * x).squareRoot() - 1) + 5 * y * y
        case .himmelblau:
            let a = x * x + y - 11, b = x + y * y - 7
            return a * a + b * b
        case .rastrigin:
            return 20 + x * x - 10 * cos(2 * Double.pi * x) + y * y - 10 * cos(2 * Double.pi * y)
        case .sphere: return x * x + y * y
        case .doubleWell: return (x * x - 1) * (x * x - 1) + 0.3 * x + y * y
        }
    }

    /// ∇f = (∂f/∂x, ∂f/∂y), derived by hand.
    public func gradient(_ x: Double, _ y: Double) -> SIMD2<Double> {
        switch self {
        case .bowl: return SIMD2(x / 10, 2 * y)
        case .rosenbrock: return SIMD2(-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x))
        case .beale:
            let a = 1.5 - x + x * y, b = 2.25 - x + x * y * y, c = 2.625 - x + x * y * y * y
            return SIMD2(2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y * y * y - 1),
                         2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y * y)
        case .saddle: return SIMD2(2 * x, -2 * y)
        case .longValley: return SIMD2(0.1 * x / (1 + x * x).squareRoot(), 10 * y)
        case .himmelblau:
            let a = x * x + y - 11, b = x + y * y - 7
            return SIMD2(4 * x * a + 2 * b, 2 * a + 4 * y * b)
        case .rastrigin:
            return SIMD2(2 * x + 20 * Double.pi * sin(2 * Double.pi * x), 2 * y + 20 * Double.pi * sin(2 * Double.pi * y))
        case .sphere: return SIMD2(2 * x, 2 * y)
        case .doubleWell: return SIMD2(4 * x * (x * x - 1) + 0.3, 2 * y)
        }
    }

    /// The Hessian (∂²f/∂x², ∂²f/∂x∂y, ∂²f/∂y²), derived by hand.
    public func hessian(_ x: Double, _ y: Double) -> SIMD3<Double> {
        switch self {
        case .bowl: return SIMD3(0.1, 0, 2)
        case .rosenbrock: return SIMD3(2 - 400 * y + 1200 * x * x, -400 * x, 200)
        case .beale:
            let a = 1.5 - x + x * y, b = 2.25 - x + x * y * y, c = 2.625 - x + x * y * y * y
            let (ax, bx, cx) = (y - 1, y * y - 1, y * y * y - 1), (ay, by, cy) = (x, 2 * x * y, 3 * x * y * y)
            return SIMD3(2 * (ax * ax + bx * bx + cx * cx),
                         2 * (ay * ax + a) + 2 * (by * bx + b * 2 * y) + 2 * (cy * cx + c * 3 * y * y),
                         2 * ay * ay + 2 * (by * by + b * 2 * x) + 2 * (cy * cy + c * 6 * x * y))
        case .saddle: return SIMD3(2, 0, -2)
        case .longValley:
            let s = (1 + x * x).squareRoot()
            return SIMD3(0.1 / (s * s * s), 0, 10)
        case .himmelblau:
            let a = x * x + y - 11, b = x + y * y - 7
            return SIMD3(4 * a + 8 * x * x + 2, 4 * x + 4 * y, 2 + 4 * b + 8 * y * y)
        case .rastrigin:
            let k = 40 * Double.pi * Double.pi
            return SIMD3(2 + k * cos(2 * Double.pi * x), 0, 2 + k * cos(2 * Double.pi * y))
        case .sphere: return SIMD3(2, 0, 2)
        case .doubleWell: return SIMD3(12 * x * x - 4, 0, 2)
        }
    }

    /// The global minima (for the saddle: the saddle point), to 16 digits.
    public var minima: [SIMD2<Double>] {
        switch self {
        case .bowl, .saddle, .longValley, .rastrigin, .sphere: return [SIMD2(0, 0)]
        case .doubleWell: return [SIMD2(-1.035578714088854, 0)]  // a root of 4x³ − 4x + 0.3
        case .rosenbrock: return [SIMD2(1, 1)]
        case .beale: return [SIMD2(3, 0.5)]
        case .himmelblau:
            // Newton-refined; the gradient there is below 2e-14.
            return [SIMD2(3, 2), SIMD2(-2.805118086952745, 3.131312518250573),
                    SIMD2(-3.779310253377747, -3.283185991286169), SIMD2(3.5844283403304917, -1.8481265269644034)]
        }
    }

    /// Local minima that are not global (where a path can get stuck).
    public var localMinima: [SIMD2<Double>] {
        self == .doubleWell ? [SIMD2(0.9601495555191055, 0)] : []
    }

    /// The minimum value, or nil when f is unbounded below (the saddle).
    public var minimumValue: Double? {
        switch self {
        case .saddle: return nil
        case .doubleWell: return -0.3054284837439160
        default: return 0
        }
    }

    /// What `minima` are: "minimum", "minima" or "saddle point".
    public var minimaName: String {
        switch self {
        case .saddle: return "saddle point"
        case .himmelblau: return "minima"
        default: return "minimum"
        }
    }

    /// The start point the classic pictures use.
    public var start: SIMD2<Double> {
        switch self {
        case .bowl: return SIMD2(-7, 2)
        case .rosenbrock: return SIMD2(-1.2, 1)
        case .beale: return SIMD2(1, 1.5)
        case .saddle: return SIMD2(-1.5, 0.001)
        case .longValley: return SIMD2(-9, 1.5)
        case .himmelblau: return SIMD2(-0.27, -0.93)
        case .rastrigin: return SIMD2(2.2, 2.7)
        case .sphere: return SIMD2(-7, 2)
        case .doubleWell: return SIMD2(2, 1)
        }
    }

    /// The region pictures show.
    public var window: (x: ClosedRange<Double>, y: ClosedRange<Double>) {
        switch self {
        case .bowl: return (-10...10, -10...10)
        case .rosenbrock: return (-2...2, -1...3)
        case .beale: return (-4.5...4.5, -4.5...4.5)
        case .saddle: return (-2...2, -2...2)
        case .longValley: return (-10...2, -3...3)
        case .himmelblau: return (-5...5, -5...5)
        case .rastrigin: return (-5.12...5.12, -5.12...5.12)
        case .sphere: return (-10...10, -10...10)
        case .doubleWell: return (-2...2.5, -1.5...1.5)
        }
    }

    /// Convex functions: every optimizer with a small enough rate must reach the minimum.
    public var isConvex: Bool { self == .bowl || self == .longValley || self == .sphere }
}
