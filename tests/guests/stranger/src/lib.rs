//! A valid component of a world that is not cairn's.

wit_bindgen::generate!({
    inline: "
        package example:stranger@1.0.0;
        interface api {
            hello: func() -> string;
        }
        world stranger {
            export api;
        }
    ",
});

struct Stranger;

impl exports::example::stranger::api::Guest for Stranger {
    fn hello() -> String {
        "hello".into()
    }
}

export!(Stranger);
