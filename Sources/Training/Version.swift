// The version descent states in the files it writes for other tools (`descent --version` prints it).
public let descentVersion = "0.20.0"
