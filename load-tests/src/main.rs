fn main() { println!("load-tests"); }
