/// The release, as both executables report it (`--version`) and the agent's heartbeats carry it
/// (`agent.version`, shown in the hosts registry).
public enum HerdwatchVersion {
    public static let string = "0.1.0"
}
